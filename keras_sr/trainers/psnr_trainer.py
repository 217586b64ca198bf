import keras
import tensorflow as tf

from keras_sr.trainers.generator_trainer import GeneratorTrainer


class PSNRTrainer(GeneratorTrainer):
    """PSNR-oriented training of a generator with a pixel loss (SRResNet, RRDB-PSNR).

    SRGAN §3.2 trains SRResNet with MSE; ESRGAN §4.1 pre-trains RRDBNet with L1. Both are the
    first stage of the two-stage recipe and give the generator that the GAN stage starts from.

    Args:
        generator: the network to train.
        scale: int, its SR factor.
        pixel_loss: a Keras loss, e.g. `keras.losses.MeanAbsoluteError()`. Defaults to L1.

    Example:
    >>> trainer = PSNRTrainer(RRDBNet(scale=4), scale=4)
    >>> trainer.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_2=0.99))
    >>> trainer.fit(dataset, steps_per_epoch=1000)
    """

    def __init__(self, generator, scale, pixel_loss=None, **kwargs):
        super().__init__(generator, scale, ("g_loss", "pixel_loss"), **kwargs)
        self.pixel_loss = pixel_loss or keras.losses.MeanAbsoluteError()

    def compile(self, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer

    def train_step(self, data):
        lr_images, hr_images, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            sr_images = self.generator(lr_images, training=True)
            pixel_loss = self.pixel_loss(hr_images, sr_images)
            scaled_loss = self.g_optimizer.scale_loss(pixel_loss)
        self.minimize(self.g_optimizer, tape, scaled_loss, self.generator.trainable_variables)
        return self.record(g_loss=pixel_loss, pixel_loss=pixel_loss)
