import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_sr")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement `(H, W, C*r*r) -> (H*r, W*r, C)`.

    Shi et al. 2016 (arXiv 1609.05158), used by SRGAN's upsampling blocks. Lowers to the TFLite
    builtin `DEPTH_TO_SPACE`. Channel order is TensorFlow's depth-to-space order, which differs
    from PyTorch's `pixel_shuffle`; weight importers permute the preceding conv accordingly.

    Args:
        upscale_factor: int, r. Defaults to 2.

    Example:
    >>> PixelShuffle(2)(np.zeros((1, 5, 7, 12), "float32")).shape
    TensorShape([1, 10, 14, 3])
    """

    def __init__(self, upscale_factor=2, **kwargs):
        super().__init__(**kwargs)
        self.upscale_factor = int(upscale_factor)

    def call(self, inputs):
        if self.upscale_factor == 1:  # depth_to_space refuses a block size of 1
            return inputs
        return tf.nn.depth_to_space(inputs, self.upscale_factor)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        r = self.upscale_factor
        return (
            batch,
            None if height is None else height * r,
            None if width is None else width * r,
            None if channels is None else channels // (r * r),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"upscale_factor": self.upscale_factor})
        return config
