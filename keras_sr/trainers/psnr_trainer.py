import keras
import tensorflow as tf

from keras_sr.trainers.generator_trainer import GeneratorTrainer


class PSNRTrainer(GeneratorTrainer):
    """Generator training without a discriminator: a pixel loss (SRResNet, RRDB-PSNR) and
    optionally a perceptual one (SRGAN's SRResNet-VGG22 / VGG54 rows).

    SRGAN §3.2 trains SRResNet with MSE; ESRGAN §4.1 pre-trains RRDBNet with L1. Both are the
    first stage of the two-stage recipe and give the generator that the GAN stage starts from.
    SRGAN's Table 1 also trains SRResNet on VGG feature losses alone (SRResNet-VGG22 / -VGG54):
    `perceptual_loss` with `pixel_weight=0`.

    Args:
        generator: the network to train.
        scale: int, its SR factor.
        pixel_loss: a Keras loss, e.g. `keras.losses.MeanAbsoluteError()`. Defaults to L1.
        perceptual_loss: an optional `PerceptualLoss`.
        pixel_weight: Defaults to 1.0.
        perceptual_weight: Defaults to 0.0 (1.0 is the usual value with a perceptual loss).
        ema_decay, pixel_sharpened, perceptual_sharpened: see `GeneratorTrainer`.

    Example:
    >>> trainer = PSNRTrainer(RRDBNet(scale=4), scale=4)
    >>> trainer.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_2=0.99))
    >>> trainer.fit(dataset, steps_per_epoch=1000)
    """

    def __init__(self, generator, scale, pixel_loss=None, perceptual_loss=None,
                 pixel_weight=1.0, perceptual_weight=0.0, ema_decay=0.0, **kwargs):
        if perceptual_loss is None and perceptual_weight:
            raise ValueError("a perceptual_weight needs a perceptual_loss")
        tracked = ("g_loss", "pixel_loss") + (("perceptual_loss",) if perceptual_loss else ())
        super().__init__(generator, scale, tracked, ema_decay=ema_decay, **kwargs)
        self.pixel_loss = pixel_loss or keras.losses.MeanAbsoluteError()
        self.perceptual_loss = perceptual_loss
        self.pixel_weight = pixel_weight
        self.perceptual_weight = perceptual_weight

    def compile(self, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer

    def train_step(self, data):
        lr_images, hr_images, _ = keras.utils.unpack_x_y_sample_weight(data)
        sharpened = self.sharpen(hr_images)
        with tf.GradientTape() as tape:
            sr_images = self.generator(lr_images, training=True)
            g_loss, logged = self.content_loss(hr_images, sr_images, sharpened)
            scaled_loss = self.g_optimizer.scale_loss(g_loss)
        self.minimize(self.g_optimizer, tape, scaled_loss, self.generator.trainable_variables)
        self.update_ema()
        return self.record(g_loss=g_loss, **logged)
