import keras

from keras_sr.layers.resize_upsampling import ResizeUpsampling


@keras.saving.register_keras_serializable(package="keras_sr")
class NearestUpsampling(ResizeUpsampling):
    """Nearest-neighbour upsampling by an integer factor, for any H x W: ESRGAN's upsampler
    (nearest x2 then conv). A `ResizeUpsampling` with method "nearest" (see there why not
    `UpSampling2D`).

    Args:
        factor: int. Defaults to 2.

    Example:
    >>> NearestUpsampling(2)(np.zeros((1, 5, 7, 8), "float32")).shape
    TensorShape([1, 10, 14, 8])
    """

    def __init__(self, factor=2, **kwargs):
        kwargs.pop("method", None)
        super().__init__(factor, "nearest", **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("method")
        return config
