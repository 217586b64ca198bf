import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_sr")
class ResizeUpsampling(keras.layers.Layer):
    """Upsampling by an integer factor with `tf.image.resize`, for any H x W.

    Keras' `UpSampling2D` is not used: with a dynamic input size it makes the following conv a
    Flex op in TFLite, which the LiteRT interpreter refuses; `tf.image.resize` with a computed
    size lowers to the builtin resize ops. "nearest" picks the same pixels as PyTorch's
    `F.interpolate(mode="nearest")` for integer factors, "bilinear" (half-pixel centres) equals
    `F.interpolate(mode="bilinear", align_corners=False)`.

    Args:
        factor: int. Defaults to 2.
        method: "nearest" or "bilinear". Defaults to "nearest".

    Example:
    >>> ResizeUpsampling(2, "bilinear")(np.zeros((1, 5, 7, 8), "float32")).shape
    TensorShape([1, 10, 14, 8])
    """

    def __init__(self, factor=2, method="nearest", **kwargs):
        super().__init__(**kwargs)
        if method not in ("nearest", "bilinear"):
            raise ValueError(f"method must be 'nearest' or 'bilinear', got {method!r}")
        self.factor = int(factor)
        self.method = method

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * self.factor
        outputs = tf.image.resize(inputs, size, method=self.method)
        # tf.image.resize returns float32 for some dtypes; keep the policy's compute dtype.
        return tf.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (
            batch,
            None if height is None else height * self.factor,
            None if width is None else width * self.factor,
            channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "method": self.method})
        return config
