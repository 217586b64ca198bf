import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_sr")
class PixelUnshuffle(keras.layers.Layer):
    """Inverse sub-pixel rearrangement `(H*r, W*r, C) -> (H, W, C*r*r)`.

    BasicSR and Real-ESRGAN run their x2 and x1 RRDBNets on a pixel-unshuffled input so that the
    trunk always works at a quarter (or sixteenth) of the pixels. Lowers to the TFLite builtin
    `SPACE_TO_DEPTH`. Height and width must be multiples of r (see `ReflectPadToMultiple`).

    Args:
        downscale_factor: int, r. Defaults to 2.

    Example:
    >>> PixelUnshuffle(2)(np.zeros((1, 10, 14, 3), "float32")).shape
    TensorShape([1, 5, 7, 12])
    """

    def __init__(self, downscale_factor=2, **kwargs):
        super().__init__(**kwargs)
        self.downscale_factor = int(downscale_factor)

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.downscale_factor)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        r = self.downscale_factor
        return (
            batch,
            None if height is None else height // r,
            None if width is None else width // r,
            None if channels is None else channels * r * r,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"downscale_factor": self.downscale_factor})
        return config
