import keras

from keras_sr.losses import adversarial
from keras_sr.trainers.adversarial_trainer import AdversarialTrainer


class SRGAN(AdversarialTrainer):
    """SRGAN training: VGG content loss plus a standard GAN loss (Ledig et al. 2017).

    SRGAN §2.2: perceptual loss = content loss + 1e-3 x adversarial loss, the content loss being
    the MSE between VGG19 phi_5,4 features (after ReLU) rescaled by 1 / 12.75 (§3.2), the
    adversarial loss the non-saturating -log D(G(LR)). The discriminator learns with binary
    cross-entropy on its logits.

    Args:
        generator: usually an `SRResNet` initialised from a PSNR-oriented run.
        discriminator: usually an `SRGANDiscriminator`.
        perceptual_loss: a `PerceptualLoss` over VGG19 block5_conv4 after ReLU, criterion "mse",
            feature_scale 1 / 12.75.
        scale: int, the SR factor. Defaults to 4.
        perceptual_weight: Defaults to 1.0.
        adversarial_weight: Defaults to 1e-3 (SRGAN eq. 3).
        pixel_weight: an optional MSE pixel term; 0.0 in the paper's SRGAN-VGG54.
        ema_decay: keeps an EMA of the generator (`GeneratorTrainer`); 0 keeps none.
        pixel_loss: the Keras loss of the pixel term. Defaults to MSE.

    Example:
    >>> trainer = SRGAN(SRResNet(), SRGANDiscriminator(), PerceptualLoss(extractor, "mse", 1/12.75))
    >>> trainer.compile(g_optimizer=keras.optimizers.Adam(1e-4),
    ...                 d_optimizer=keras.optimizers.Adam(1e-4))
    """

    generator_adversarial_loss = staticmethod(adversarial.standard_generator_loss)
    generator_loss_reads_real = False
    discriminator_adversarial_loss = staticmethod(adversarial.standard_discriminator_loss)

    def __init__(self, generator, discriminator, perceptual_loss, scale=4,
                 perceptual_weight=1.0, adversarial_weight=1e-3, pixel_weight=0.0,
                 pixel_loss=None, ema_decay=0.0, **kwargs):
        super().__init__(generator, discriminator, perceptual_loss,
                         pixel_loss or keras.losses.MeanSquaredError(), scale, perceptual_weight,
                         pixel_weight, adversarial_weight, ema_decay=ema_decay,
                         **kwargs)
