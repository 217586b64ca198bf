import keras

from keras_sr.architectures import RRDBNET_UNSHUFFLE_FACTORS
from keras_sr.layers.clip_to_unit_range import ClipToUnitRange
from keras_sr.layers.conv2d import Conv2D
from keras_sr.layers.crop_to_scaled_size import CropToScaledSize
from keras_sr.layers.nearest_upsampling import NearestUpsampling
from keras_sr.layers.pixel_unshuffle import PixelUnshuffle
from keras_sr.layers.reflect_pad_to_multiple import ReflectPadToMultiple
from keras_sr.layers.rrdb import RRDB
from keras_sr.models.dtypes import keep_dtype_policy, output_dtype
from keras_sr.models.preset_base import FromPreset

# BasicSR / Real-ESRGAN run x2 and x1 models on a pixel-unshuffled input and keep the x4 body.
UNSHUFFLE_FACTORS = RRDBNET_UNSHUFFLE_FACTORS


@keras.saving.register_keras_serializable(package="keras_sr")
class RRDBNet(FromPreset, keras.Model):
    """RRDBNet, the ESRGAN generator.

    Wang et al. 2018, ESRGAN §3.1 (arXiv 1809.00219), laid out as BasicSR's `RRDBNet`: conv_first;
    `num_blocks` residual-in-residual dense blocks; conv_body + long skip; two upsamplers
    (nearest x2, conv, LeakyReLU 0.2); conv_hr + LeakyReLU; conv_last. No batch normalisation.
    Scale 4 works on the LR image directly; scales 2 and 1 pixel-unshuffle it by 2 and 4 first
    (as BasicSR and Real-ESRGAN do), reflect-padding odd sizes and cropping the result back, so
    any H x W works at every scale. The default configuration has 16,697,987 parameters, as the
    PyTorch reference. Images are [0, 1] in and out.

    Args:
        scale: int, 1, 2 or 4. Defaults to 4.
        num_blocks: int, RRDBs in the trunk. Defaults to 23 (Real-ESRGAN's anime model uses 6).
        num_features: int, channels of the trunk. Defaults to 64.
        growth_channels: int, growth of each dense block. Defaults to 32.
        residual_scale: float, residual scaling inside and around every block. Defaults to 0.2.
        dtype: dtype policy for every layer (e.g. "mixed_bfloat16"); the output stays float32
            under mixed policies. Defaults to the global policy.

    Example:
    >>> model = RRDBNet(scale=4, num_blocks=1, num_features=8, growth_channels=4)
    >>> model(np.zeros((1, 12, 12, 3), "float32")).shape
    TensorShape([1, 48, 48, 3])
    """

    # The scales it is built for: x4 on the LR image, x2 / x1 on a pixel-unshuffled one.
    SCALES = tuple(sorted(UNSHUFFLE_FACTORS))

    def __init__(
        self,
        scale=4,
        num_blocks=23,
        num_features=64,
        growth_channels=32,
        residual_scale=0.2,
        dtype=None,
        **kwargs,
    ):
        if scale not in UNSHUFFLE_FACTORS:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got scale={scale!r}")
        if num_blocks < 0 or num_features < 1 or growth_channels < 1:
            raise ValueError(
                "RRDBNet needs num_blocks >= 0, num_features >= 1 and growth_channels >= 1, got "
                f"num_blocks={num_blocks!r}, num_features={num_features!r}, "
                f"growth_channels={growth_channels!r}"
            )
        unshuffle = UNSHUFFLE_FACTORS[scale]

        # === Layers ===
        def conv(filters, name):
            return Conv2D(filters, 3, padding="same", dtype=dtype, name=name)

        def leaky_relu(name):
            return keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype, name=name)

        if unshuffle > 1:
            pad = ReflectPadToMultiple(unshuffle, dtype=dtype, name="pad_to_multiple")
            space_to_depth = PixelUnshuffle(unshuffle, dtype=dtype, name="pixel_unshuffle")
            crop = CropToScaledSize(scale, dtype=dtype, name="crop")
        conv_first = conv(num_features, "conv_first")
        blocks = [
            RRDB(num_features, growth_channels, residual_scale, dtype=dtype, name=f"body_{index}")
            for index in range(num_blocks)
        ]
        conv_body = conv(num_features, "conv_body")
        add_skip = keras.layers.Add(dtype=dtype, name="long_skip")
        upsamplers = [
            (
                NearestUpsampling(2, dtype=dtype, name=f"upsample{index}"),
                conv(num_features, f"conv_up{index}"),
                leaky_relu(f"lrelu_up{index}"),
            )
            for index in (1, 2)
        ]
        conv_hr = conv(num_features, "conv_hr")
        lrelu_hr = leaky_relu("lrelu_hr")
        conv_last = conv(3, "conv_last")
        clip = ClipToUnitRange(dtype=output_dtype(dtype), name="sr_images")

        # === Functional Model ===
        lr_images = keras.Input(shape=(None, None, 3), name="lr_images")
        features = lr_images
        if unshuffle > 1:
            features = space_to_depth(pad(features))
        features = conv_first(features)
        body = features
        for block in blocks:
            body = block(body)
        features = add_skip([features, conv_body(body)])
        for upsample, conv_up, activation in upsamplers:
            features = activation(conv_up(upsample(features)))
        outputs = conv_last(lrelu_hr(conv_hr(features)))
        if unshuffle > 1:
            outputs = crop([outputs, lr_images])
        sr_images = clip(outputs)
        super().__init__(inputs=lr_images, outputs=sr_images, dtype=dtype, **kwargs)
        keep_dtype_policy(self, dtype)

        # === Config ===
        self.scale = scale
        self.num_blocks = num_blocks
        self.num_features = num_features
        self.growth_channels = growth_channels
        self.residual_scale = residual_scale

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale": self.scale,
                "num_blocks": self.num_blocks,
                "num_features": self.num_features,
                "growth_channels": self.growth_channels,
                "residual_scale": self.residual_scale,
            }
        )
        return config
