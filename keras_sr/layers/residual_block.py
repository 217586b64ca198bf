import keras

from keras_sr.layers import pytorch_defaults
from keras_sr.layers.conv2d import Conv2D


@keras.saving.register_keras_serializable(package="keras_sr")
class ResidualBlock(keras.layers.Layer):
    """SRResNet residual block: conv3x3, BN, PReLU, conv3x3, BN, skip sum.

    SRGAN paper Fig. 4 (arXiv 1609.04802), following Gross and Wilber's residual block layout.
    PReLU has one slope per channel, shared over space so any H x W works.

    Args:
        num_features: int, channels in and out. Defaults to 64.

    Example:
    >>> ResidualBlock(num_features=8)(np.zeros((1, 6, 6, 8))).shape
    TensorShape([1, 6, 6, 8])
    """

    def __init__(self, num_features=64, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features
        dtype = self.dtype_policy
        self.conv1 = Conv2D(num_features, 3, padding="same", dtype=dtype, name="conv1")
        self.bn1 = pytorch_defaults.batch_norm(dtype, "bn1")
        self.prelu = pytorch_defaults.prelu(dtype, "prelu")
        self.conv2 = Conv2D(num_features, 3, padding="same", dtype=dtype, name="conv2")
        self.bn2 = pytorch_defaults.batch_norm(dtype, "bn2")

    def build(self, input_shape):
        if input_shape[-1] != self.num_features:
            raise ValueError(
                f"ResidualBlock expects {self.num_features} input channels (num_features), "
                f"got input shape {input_shape}"
            )
        for layer in (self.conv1, self.bn1, self.prelu, self.conv2, self.bn2):
            layer.build(input_shape)

    def call(self, inputs, training=None):
        outputs = self.prelu(self.bn1(self.conv1(inputs), training=training))
        outputs = self.bn2(self.conv2(outputs), training=training)
        return outputs + inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_features": self.num_features})
        return config
