import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sr")
class ClipToUnitRange(keras.layers.Layer):
    """Clips generator outputs to [0, 1] at inference; passes them through unchanged while
    training.

    keras-sr's image contract is [0, 1] in and out, so a served model clips (TFLite lowers the
    clip to the builtin `RELU_0_TO_1`). Training sees the raw output, as the reference code
    (BasicSR, which trained the released models) computes every loss on it and clips only
    when writing images: a pixel predicted at 1.2 against a target of 0.9 is then pulled back
    by its true error, and the losses and gradients are the reference's number for number.

    Example:
    >>> ClipToUnitRange()(np.array([-0.5, 0.25, 1.5], "float32")).numpy()
    array([0.  , 0.25, 1.  ], dtype=float32)
    """

    def call(self, inputs, training=None):
        if training:
            return inputs
        return ops.clip(inputs, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape
