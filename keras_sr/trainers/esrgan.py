import keras

from keras_sr.losses import adversarial
from keras_sr.trainers.adversarial_trainer import AdversarialTrainer


class ESRGAN(AdversarialTrainer):
    """ESRGAN training: perceptual + relativistic average GAN + L1 (Wang et al. 2018).

    ESRGAN §3.4 eq. 3: L_G = L_percep + 5e-3 x L_G^Ra + 1e-2 x L_1, where L_percep is the L1
    distance between VGG19 conv5_4 features before activation (§3.3) and L_G^Ra the symmetric
    relativistic generator loss (§3.2). The discriminator minimises the relativistic average
    loss BCE(C(x_r) - E[C(x_f)], 1) + BCE(C(x_f) - E[C(x_r)], 0), with the batch means taken
    over the global batch under a distribution strategy. Both adversarial losses are weighted
    as BasicSR's code (which trained the released models) weights them, half the paper's sums
    (see `keras_sr.losses.adversarial`); its perceptual loss uses torchvision's VGG19
    (`vgg19_features(weights="torchvision")`).

    Args:
        generator: usually an `RRDBNet` initialised from a PSNR-oriented (RRDB-PSNR) run.
        discriminator: usually a `VGGStyleDiscriminator`.
        perceptual_loss: a `PerceptualLoss` over VGG19 block5_conv4 before activation, "l1".
        scale: int, the SR factor. Defaults to 4.
        perceptual_weight: Defaults to 1.0.
        adversarial_weight: lambda, defaults to 5e-3 (ESRGAN §4.1).
        pixel_weight: eta, defaults to 1e-2 (ESRGAN §4.1).
        ema_decay: keeps an EMA of the generator (`GeneratorTrainer`); 0 keeps none.
        pixel_loss: the Keras loss of the pixel term. Defaults to L1.

    Example:
    >>> trainer = ESRGAN(RRDBNet(), VGGStyleDiscriminator(), PerceptualLoss(extractor, "l1"))
    >>> trainer.compile(g_optimizer=keras.optimizers.Adam(1e-4, beta_2=0.99),
    ...                 d_optimizer=keras.optimizers.Adam(1e-4, beta_2=0.99))
    """

    generator_adversarial_loss = staticmethod(adversarial.relativistic_generator_loss)
    discriminator_adversarial_loss = staticmethod(adversarial.relativistic_discriminator_loss)

    def __init__(self, generator, discriminator, perceptual_loss, scale=4,
                 perceptual_weight=1.0, adversarial_weight=5e-3, pixel_weight=1e-2,
                 pixel_loss=None, ema_decay=0.0, **kwargs):
        super().__init__(generator, discriminator, perceptual_loss,
                         pixel_loss or keras.losses.MeanAbsoluteError(), scale, perceptual_weight,
                         pixel_weight, adversarial_weight, ema_decay=ema_decay,
                         **kwargs)
