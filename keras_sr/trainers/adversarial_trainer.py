import keras
import tensorflow as tf
from keras import ops

from keras_sr.trainers.generator_trainer import GeneratorTrainer

TRACKED = ("g_loss", "d_loss", "pixel_loss", "perceptual_loss", "adversarial_loss", "d_real",
           "d_fake")


class AdversarialTrainer(GeneratorTrainer):
    """The GAN step SRGAN and ESRGAN share; subclasses choose the losses and their weights.

    Each step (in BasicSR's order) runs the generator once, updates it on
    `perceptual_weight * perceptual + pixel_weight * pixel + adversarial_weight * adversarial`
    with the discriminator fixed, then updates the discriminator on the same, detached SR batch.
    `adversarial_sharpened` makes the unsharp-masked HR batch the discriminator's real images in
    both updates (Real-ESRGAN's gan_gt_usm); `pixel_sharpened` and `perceptual_sharpened` are
    `GeneratorTrainer`'s.
    With `ema_decay`, the generator's EMA is updated after each generator step (see
    `GeneratorTrainer`). Logged: g_loss, d_loss, pixel_loss, perceptual_loss, adversarial_loss,
    and d_real / d_fake, the mean sigmoid of the discriminator's logits on HR and SR images.
    """

    generator_adversarial_loss = None
    discriminator_adversarial_loss = None
    # Whether the generator's adversarial loss reads the real images' logits (ESRGAN's
    # relativistic loss does; the standard one does not, and then D(HR) is not run in the
    # generator step: one discriminator forward, and one spectral-norm power iteration, less).
    generator_loss_reads_real = True

    def __init__(self, generator, discriminator, perceptual_loss, pixel_loss, scale,
                 perceptual_weight, pixel_weight, adversarial_weight, ema_decay=0.0,
                 adversarial_sharpened=False, **kwargs):
        self.adversarial_sharpened = adversarial_sharpened
        super().__init__(generator, scale, TRACKED, ema_decay=ema_decay, **kwargs)
        if perceptual_loss is None and perceptual_weight:
            raise ValueError("a perceptual_weight needs a perceptual_loss")
        self.discriminator = discriminator
        self.perceptual_loss = perceptual_loss
        self.pixel_loss = pixel_loss
        self.perceptual_weight = perceptual_weight
        self.pixel_weight = pixel_weight
        self.adversarial_weight = adversarial_weight

    @property
    def sharpened_terms(self):
        return {**super().sharpened_terms, "adversarial_loss": self.adversarial_sharpened}

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def train_step(self, data):
        lr_images, hr_images, _ = keras.utils.unpack_x_y_sample_weight(data)
        sharpened = self.sharpen(hr_images)
        real_images = sharpened if self.adversarial_sharpened else hr_images
        with tf.GradientTape() as tape:
            sr_images = self.generator(lr_images, training=True)
            content_loss, logged = self.content_loss(hr_images, sr_images, sharpened)
            real_logits = ops.stop_gradient(self.discriminator(real_images, training=True)) \
                if self.generator_loss_reads_real else None
            fake_logits = self.discriminator(sr_images, training=True)
            adversarial_loss = self.generator_adversarial_loss(real_logits, fake_logits)
            g_loss = content_loss + self.adversarial_weight * adversarial_loss
            g_scaled = self.g_optimizer.scale_loss(g_loss)
        self.minimize(self.g_optimizer, tape, g_scaled, self.generator.trainable_variables)
        self.update_ema()

        sr_images = ops.stop_gradient(sr_images)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real_images, training=True)
            fake_logits = self.discriminator(sr_images, training=True)
            d_loss = self.discriminator_adversarial_loss(real_logits, fake_logits)
            d_scaled = self.d_optimizer.scale_loss(d_loss)
        self.minimize(self.d_optimizer, tape, d_scaled, self.discriminator.trainable_variables)

        return self.record(
            g_loss=g_loss, d_loss=d_loss, adversarial_loss=adversarial_loss,
            d_real=ops.mean(ops.sigmoid(real_logits)), d_fake=ops.mean(ops.sigmoid(fake_logits)),
            **logged)
