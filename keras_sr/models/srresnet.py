import keras

from keras_sr.architectures import SRRESNET_UPSAMPLE_FACTORS
from keras_sr.layers import pytorch_defaults
from keras_sr.layers.clip_to_unit_range import ClipToUnitRange
from keras_sr.layers.conv2d import Conv2D
from keras_sr.layers.pixel_shuffle import PixelShuffle
from keras_sr.layers.residual_block import ResidualBlock
from keras_sr.models.dtypes import keep_dtype_policy, output_dtype

# SRGAN Fig. 4 upsamples with x2 sub-pixel blocks; x3 uses a single x3 shuffle.
UPSAMPLE_FACTORS = SRRESNET_UPSAMPLE_FACTORS


@keras.saving.register_keras_serializable(package="keras_sr")
class SRResNet(keras.Model):
    """SRResNet, the SRGAN generator.

    Ledig et al. 2017, SRGAN paper Fig. 4 (arXiv 1609.04802): 9x9 conv + PReLU; `num_blocks`
    residual blocks (conv3x3, BN, PReLU, conv3x3, BN, skip); conv3x3 + BN + long skip; sub-pixel
    upsamplers (conv3x3 to 4x features, pixel shuffle x2, PReLU; one x3 shuffle for scale 3);
    9x9 conv to 3 channels. Images are [0, 1] in and out at any H x W.

    Args:
        scale: int, 2, 3 or 4. Defaults to 4.
        num_blocks: int, residual blocks. Defaults to 16.
        num_features: int, channels of the trunk. Defaults to 64.
        dtype: dtype policy for every layer (e.g. "mixed_bfloat16"); the output stays float32
            under mixed policies. Defaults to the global policy.

    Example:
    >>> model = SRResNet(scale=4, num_blocks=2, num_features=8)
    >>> model(np.zeros((1, 12, 12, 3), "float32")).shape
    TensorShape([1, 48, 48, 3])
    """

    SCALES = tuple(sorted(UPSAMPLE_FACTORS))  # sub-pixel stages: x2, x3, or x2 twice

    def __init__(self, scale=4, num_blocks=16, num_features=64, dtype=None, **kwargs):
        if scale not in UPSAMPLE_FACTORS:
            raise ValueError(f"SRResNet supports scale 2, 3 or 4, got scale={scale!r}")
        if num_blocks < 0 or num_features < 1:
            raise ValueError(
                f"SRResNet needs num_blocks >= 0 and num_features >= 1, "
                f"got num_blocks={num_blocks!r}, num_features={num_features!r}"
            )

        # === Layers ===
        def prelu(name):
            return pytorch_defaults.prelu(dtype, name)

        conv_first = keras.layers.Conv2D(num_features, 9, padding="same", dtype=dtype,
                                         name="conv_first")
        prelu_first = prelu("prelu_first")
        blocks = [ResidualBlock(num_features, dtype=dtype, name=f"body_{index}")
                  for index in range(num_blocks)]
        conv_body = Conv2D(num_features, 3, padding="same", dtype=dtype, name="conv_body")
        bn_body = pytorch_defaults.batch_norm(dtype, "bn_body")
        add_skip = keras.layers.Add(dtype=dtype, name="long_skip")
        upsamplers = [
            (
                Conv2D(num_features * factor * factor, 3, padding="same", dtype=dtype,
                       name=f"conv_up{index + 1}"),
                PixelShuffle(factor, dtype=dtype, name=f"pixel_shuffle{index + 1}"),
                prelu(f"prelu_up{index + 1}"),
            )
            for index, factor in enumerate(UPSAMPLE_FACTORS[scale])
        ]
        conv_last = keras.layers.Conv2D(3, 9, padding="same", dtype=dtype, name="conv_last")
        clip = ClipToUnitRange(dtype=output_dtype(dtype), name="sr_images")

        # === Functional Model ===
        lr_images = keras.Input(shape=(None, None, 3), name="lr_images")
        features = prelu_first(conv_first(lr_images))
        body = features
        for block in blocks:
            body = block(body)
        features = add_skip([features, bn_body(conv_body(body))])
        for conv, shuffle, activation in upsamplers:
            features = activation(shuffle(conv(features)))
        sr_images = clip(conv_last(features))
        super().__init__(inputs=lr_images, outputs=sr_images, dtype=dtype, **kwargs)
        keep_dtype_policy(self, dtype)

        # === Config ===
        self.scale = scale
        self.num_blocks = num_blocks
        self.num_features = num_features

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale": self.scale,
                "num_blocks": self.num_blocks,
                "num_features": self.num_features,
            }
        )
        return config
