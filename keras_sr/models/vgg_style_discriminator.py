import keras

from keras_sr.architectures import DISCRIMINATOR_INPUT_MULTIPLES
from keras_sr.models.blocks import (
    check_input_size,
    conv_bn_leaky_relu,
    conv_leaky_relu,
    logits_head,
)
from keras_sr.models.dtypes import keep_dtype_policy

# Channel multipliers of the four (conv3x3 s1, conv4x4 s2) stages after the first downsampling.
STAGE_MULTIPLIERS = (2, 4, 8, 8)


@keras.saving.register_keras_serializable(package="keras_sr")
class VGGStyleDiscriminator(keras.Model):
    """The ESRGAN discriminator, laid out as BasicSR's `VGGStyleDiscriminator`.

    Wang et al. 2018, ESRGAN §3.2 (arXiv 1809.00219): conv3x3-64 + LeakyReLU(0.2); conv4x4
    stride 2 + BN + LeakyReLU; then four stages of (conv3x3 stride 1, conv4x4 stride 2), each with
    BN + LeakyReLU, at 128, 256, 512, 512 channels, reaching a 4x4 map at 128x128 input;
    Dense(100), LeakyReLU, Dense(1). Returns logits; ESRGAN's relativistic loss compares them.

    Args:
        input_size: int, side of the square HR patches, a multiple of 32. Defaults to 128.
        num_features: int, channels of the first stage. Defaults to 64.
        dtype: dtype policy for every layer; logits stay float32 under mixed policies.

    Example:
    >>> model = VGGStyleDiscriminator(input_size=32, num_features=8)
    >>> model(np.zeros((2, 32, 32, 3), "float32")).shape
    TensorShape([2, 1])
    """

    # Its strided convs halve the patch 5 times before the dense head.
    INPUT_MULTIPLE = DISCRIMINATOR_INPUT_MULTIPLES["vgg_style"]

    def __init__(self, input_size=128, num_features=64, dtype=None, **kwargs):
        check_input_size("VGGStyleDiscriminator", input_size, self.INPUT_MULTIPLE)

        # === Functional Model ===
        hr_images = keras.Input(shape=(input_size, input_size, 3), name="hr_images")
        features = conv_leaky_relu(hr_images, num_features, dtype, "conv0_0")
        features = conv_bn_leaky_relu(features, num_features, 4, 2, dtype, "conv0_1")
        for stage, multiplier in enumerate(STAGE_MULTIPLIERS, start=1):
            filters = num_features * multiplier
            features = conv_bn_leaky_relu(features, filters, 3, 1, dtype, f"conv{stage}_0")
            features = conv_bn_leaky_relu(features, filters, 4, 2, dtype, f"conv{stage}_1")
        logits = logits_head(features, 100, dtype)
        super().__init__(inputs=hr_images, outputs=logits, dtype=dtype, **kwargs)
        keep_dtype_policy(self, dtype)

        # === Config ===
        self.input_size = input_size
        self.num_features = num_features

    def get_config(self):
        config = super().get_config()
        config.update({"input_size": self.input_size, "num_features": self.num_features})
        return config
