import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sr")
class ClipToUnitRange(keras.layers.Layer):
    """Clips generator outputs to [0, 1], with a straight-through gradient while training.

    keras-sr's image contract is [0, 1] in and out. A plain clip would give zero gradient to
    every pixel that overshoots, so a pixel predicted at 1.2 against a target of 0.9 would never
    be pulled back; while training, the forward value is clipped but the gradient is the
    identity (Bengio et al. 2013, straight-through estimator). At inference it is a plain clip,
    which TFLite lowers to the builtin `RELU_0_TO_1`.

    Example:
    >>> ClipToUnitRange()(np.array([-0.5, 0.25, 1.5], "float32")).numpy()
    array([0.  , 0.25, 1.  ], dtype=float32)
    """

    def call(self, inputs, training=None):
        clipped = ops.clip(inputs, 0.0, 1.0)
        if training:
            return inputs + ops.stop_gradient(clipped - inputs)
        return clipped

    def compute_output_shape(self, input_shape):
        return input_shape
