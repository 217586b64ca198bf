import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sr")
class CropToScaledSize(keras.layers.Layer):
    """Crops `images` to `scale` times the height and width of `reference` (top-left kept).

    Undoes `ReflectPadToMultiple`: called on `[sr_images, lr_images]`, it removes the rows and
    columns that came from the padding. Lowers to TFLite's builtin `STRIDED_SLICE`.

    Args:
        scale: int. Defaults to 1.

    Example:
    >>> CropToScaledSize(2)([np.zeros((1, 80, 112, 3)), np.zeros((1, 37, 53, 3))]).shape
    TensorShape([1, 74, 106, 3])
    """

    def __init__(self, scale=1, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        images, reference = inputs
        size = ops.shape(reference)
        return images[:, : size[1] * self.scale, : size[2] * self.scale, :]

    def compute_output_shape(self, input_shape):
        images_shape, reference_shape = input_shape

        def scaled(n):
            return None if n is None else n * self.scale

        return (images_shape[0], scaled(reference_shape[1]), scaled(reference_shape[2]),
                images_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config
