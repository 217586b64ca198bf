import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_sr")
class NearestUpsampling(keras.layers.Layer):
    """Nearest-neighbour upsampling by an integer factor, for any H x W.

    ESRGAN's upsampler (nearest x2 then conv). Keras' `UpSampling2D` is not used: with a dynamic
    input size it makes the following conv a Flex op in TFLite, which the LiteRT interpreter
    refuses. `tf.image.resize(..., "nearest")` with a computed size lowers to the builtin
    `RESIZE_NEAREST_NEIGHBOR` and, for integer factors, picks the same pixels as PyTorch's
    `F.interpolate(mode="nearest")`.

    Args:
        factor: int. Defaults to 2.

    Example:
    >>> NearestUpsampling(2)(np.zeros((1, 5, 7, 8), "float32")).shape
    TensorShape([1, 10, 14, 8])
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * self.factor
        outputs = tf.image.resize(inputs, size, method="nearest")
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
        config.update({"factor": self.factor})
        return config
