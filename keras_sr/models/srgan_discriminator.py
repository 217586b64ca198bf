import keras

from keras_sr.architectures import DISCRIMINATOR_INPUT_MULTIPLES
from keras_sr.models.blocks import (
    check_input_size,
    conv_bn_leaky_relu,
    conv_leaky_relu,
    logits_head,
)
from keras_sr.models.dtypes import keep_dtype_policy

# SRGAN Fig. 4: (filters, stride) of the seven conv + BN + LeakyReLU units after the first conv.
STAGES = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))


@keras.saving.register_keras_serializable(package="keras_sr")
class SRGANDiscriminator(keras.Model):
    """The SRGAN discriminator.

    Ledig et al. 2017, SRGAN paper Fig. 4 (arXiv 1609.04802): conv3x3-64 + LeakyReLU(0.2), then
    seven conv3x3 + BN + LeakyReLU units with 64, 128, 128, 256, 256, 512, 512 filters and
    strides 2, 1, 2, 1, 2, 1, 2; Dense(1024), LeakyReLU, Dense(1). It returns one logit per
    image: the sigmoid belongs in the loss (numerically stable BCE on logits).

    Args:
        input_size: int, side of the square HR patches it judges, a multiple of 16.
            Defaults to 96 (the paper's patch size).
        num_features: int, filters of the first stage; later stages scale it as in the paper.
            Defaults to 64.
        dtype: dtype policy for every layer; logits stay float32 under mixed policies.

    Example:
    >>> model = SRGANDiscriminator(input_size=32, num_features=8)
    >>> model(np.zeros((2, 32, 32, 3), "float32")).shape
    TensorShape([2, 1])
    """

    # Its strided convs halve the patch 4 times before the dense head.
    INPUT_MULTIPLE = DISCRIMINATOR_INPUT_MULTIPLES["srgan"]

    def __init__(self, input_size=96, num_features=64, dtype=None, **kwargs):
        check_input_size("SRGANDiscriminator", input_size, self.INPUT_MULTIPLE)

        # === Functional Model ===
        hr_images = keras.Input(shape=(input_size, input_size, 3), name="hr_images")
        features = conv_leaky_relu(hr_images, num_features, dtype, "conv0")
        for index, (filters, strides) in enumerate(STAGES, start=1):
            features = conv_bn_leaky_relu(features, filters * num_features // 64, 3, strides,
                                          dtype, f"stage{index}")
        logits = logits_head(features, 1024 * num_features // 64, dtype)
        super().__init__(inputs=hr_images, outputs=logits, dtype=dtype, **kwargs)
        keep_dtype_policy(self, dtype)

        # === Config ===
        self.input_size = input_size
        self.num_features = num_features

    def get_config(self):
        config = super().get_config()
        config.update({"input_size": self.input_size, "num_features": self.num_features})
        return config
