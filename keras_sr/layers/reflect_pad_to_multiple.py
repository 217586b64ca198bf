import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_sr")
class ReflectPadToMultiple(keras.layers.Layer):
    """Reflect-pads the bottom and right edges so that H and W become multiples of `multiple`.

    Real-ESRGAN pads this way before pixel-unshuffling an odd-sized image (its `mod_pad`); the
    network output is cropped back afterwards by `CropToScaledSize`. Lowers to TFLite's builtin
    `MIRROR_PAD` and `STRIDED_SLICE`. Reflection needs each side to be at least `multiple`
    pixels long.

    Args:
        multiple: int. Defaults to 2.

    Example:
    >>> ReflectPadToMultiple(4)(np.zeros((1, 37, 53, 3), "float32")).shape
    TensorShape([1, 40, 56, 3])
    """

    def __init__(self, multiple=2, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        # Pad by the constant `multiple - 1` and slice back to the rounded-up size: dynamic
        # paddings would erase the static channel count that TFLite's CONV_2D needs, and the
        # first k reflected rows are the same whatever the total padding.
        m = self.multiple
        padded = tf.pad(inputs, [[0, 0], [0, m - 1], [0, m - 1], [0, 0]], mode="REFLECT")
        size = tf.shape(inputs)[1:3]
        rounded = (size + m - 1) // m * m
        return padded[:, : rounded[0], : rounded[1], :]

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        m = self.multiple

        def round_up(n):
            return None if n is None else -(-n // m) * m

        return (batch, round_up(height), round_up(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple})
        return config
