import keras

from keras_sr.layers import pytorch_defaults
from keras_sr.layers.clip_to_unit_range import ClipToUnitRange
from keras_sr.layers.conv2d import Conv2D
from keras_sr.layers.nearest_upsampling import NearestUpsampling
from keras_sr.layers.pixel_shuffle import PixelShuffle
from keras_sr.models.dtypes import keep_dtype_policy, output_dtype
from keras_sr.models.preset_base import FromPreset

ACTIVATIONS = ("prelu", "relu", "leaky_relu")


@keras.saving.register_keras_serializable(package="keras_sr")
class SRVGGNetCompact(FromPreset, keras.Model):
    """SRVGGNetCompact, Real-ESRGAN's compact generator.

    Wang et al. 2021, Real-ESRGAN (arXiv 2107.10833), the network of `realesr-animevideov3` and
    `realesr-general-x4v3`, laid out as BasicSR's `SRVGGNetCompact`: conv + activation, then
    `num_convs` x (conv + activation), a conv to 3 * scale^2 channels, pixel shuffle, and the
    nearest-upsampled input added back, so the body only learns the residual. Every conv works
    at LR resolution, which makes it the model for phones (about 0.6M parameters at 16 convs and
    1.2M at 32). Images are [0, 1] in and out.

    Args:
        scale: int, upscaling factor (any integer >= 1). Defaults to 4.
        num_convs: int, the convs between the first and the last. Defaults to 16.
        num_features: int, channels of every hidden conv. Defaults to 64.
        activation: "prelu" (one slope per channel, as the published models), "relu" or
            "leaky_relu" (slope 0.1, as BasicSR). Defaults to "prelu".
        dtype: dtype policy for every layer; the output stays float32 under mixed policies.
            Defaults to the global policy.

    Example:
    >>> model = SRVGGNetCompact(scale=4, num_convs=2, num_features=8)
    >>> model(np.zeros((1, 12, 12, 3), "float32")).shape
    TensorShape([1, 48, 48, 3])
    """

    def __init__(
        self,
        scale=4,
        num_convs=16,
        num_features=64,
        activation="prelu",
        dtype=None,
        **kwargs,
    ):
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"SRVGGNetCompact needs an integer scale >= 1, got scale={scale!r}")
        if num_convs < 0 or num_features < 1:
            raise ValueError(
                "SRVGGNetCompact needs num_convs >= 0 and num_features >= 1, got "
                f"num_convs={num_convs!r}, num_features={num_features!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")

        # === Layers ===
        def conv(filters, name):
            return Conv2D(filters, 3, padding="same", dtype=dtype, name=name)

        def activation_layer(name):
            if activation == "prelu":
                return pytorch_defaults.prelu(dtype, name)
            if activation == "relu":
                return keras.layers.ReLU(dtype=dtype, name=name)
            return keras.layers.LeakyReLU(negative_slope=0.1, dtype=dtype, name=name)

        body = [(conv(num_features, "conv_first"), activation_layer("act_first"))]
        body += [(conv(num_features, f"conv_{index}"), activation_layer(f"act_{index}"))
                 for index in range(1, num_convs + 1)]
        conv_last = conv(3 * scale * scale, "conv_last")
        pixel_shuffle = PixelShuffle(scale, dtype=dtype, name="pixel_shuffle")
        upsample_input = NearestUpsampling(scale, dtype=dtype, name="upsample_input")
        add_base = keras.layers.Add(dtype=dtype, name="add_base")
        clip = ClipToUnitRange(dtype=output_dtype(dtype), name="sr_images")

        # === Functional Model ===
        lr_images = keras.Input(shape=(None, None, 3), name="lr_images")
        features = lr_images
        for conv_layer, act in body:
            features = act(conv_layer(features))
        residual = pixel_shuffle(conv_last(features))
        sr_images = clip(add_base([residual, upsample_input(lr_images)]))
        super().__init__(inputs=lr_images, outputs=sr_images, dtype=dtype, **kwargs)
        keep_dtype_policy(self, dtype)

        # === Config ===
        self.scale = scale
        self.num_convs = num_convs
        self.num_features = num_features
        self.activation = activation

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale": self.scale,
                "num_convs": self.num_convs,
                "num_features": self.num_features,
                "activation": self.activation,
            }
        )
        return config
