import contextlib
import functools
import threading

import keras
import tensorflow as tf
from keras import ops

from keras_sr.layers.conv2d import Conv2D, conv3x3, shared_graph, weight_gradient_mode


def scaled_he_normal(scale):
    """He-normal initialiser multiplied by `scale` (BasicSR's `default_init_weights`)."""
    # std = scale * sqrt(2 / fan_in)  <=>  variance scale = 2 * scale**2.
    return keras.initializers.VarianceScaling(
        scale=2.0 * scale * scale, mode="fan_in", distribution="untruncated_normal"
    )


def dense_block(inputs, convs, residual_scale):
    """One residual dense block on tensors; `convs` its five convolutions, each a function of
    its input: the block's Conv2D layers, or `conv_over` their weights."""
    features = [inputs]
    for conv in convs[:4]:
        features.append(
            ops.leaky_relu(conv(ops.concatenate(features, axis=-1)), negative_slope=0.2)
        )
    residual = convs[4](ops.concatenate(features, axis=-1))
    return residual * residual_scale + inputs


def conv_over(kernel, bias, gradient=None):
    """A 'same' 3x3 convolution with bias over given weight tensors, as a Conv2D layer computes;
    `gradient`: keras_sr.layers.conv2d.weight_gradient_mode's choice."""
    return lambda images: conv3x3(images, kernel, bias, gradient)


def convs_over(kernels, biases, gradient=None):
    return [conv_over(kernel, bias, gradient) for kernel, bias in zip(kernels, biases)]


def _dense_block_over(inputs, kernels, biases, residual_scale, gradient=None):
    return dense_block(inputs, convs_over(kernels, biases, gradient), residual_scale)


traced_dense_block = shared_graph(_dense_block_over)

_tracing = threading.local()


@contextlib.contextmanager
def per_layer_ops():
    """Dense blocks and RRDBs traced inside it call their conv layers one by one.

    Their ops then keep the layers' names (`<model>/body_3/rdb2/conv4/...`), which TFLite's
    per-layer tools read: selective int8 quantization by layer name, the quantization debugger,
    op profiles. The computation is the same.
    """
    previous = getattr(_tracing, "per_layer", False)
    _tracing.per_layer = True
    try:
        yield
    finally:
        _tracing.per_layer = previous


def tracing_per_layer():
    return getattr(_tracing, "per_layer", False)


def conv_weights(convs):
    """The convolutions' kernels and biases as tensors in the calling layer's compute dtype."""
    return (
        [tf.convert_to_tensor(conv.kernel) for conv in convs],
        [tf.convert_to_tensor(conv.bias) for conv in convs],
    )


@keras.saving.register_keras_serializable(package="keras_sr")
class ResidualDenseBlock(keras.layers.Layer):
    """Residual dense block of five 3x3 convs, the unit inside ESRGAN's RRDB.

    ESRGAN §3.1 (arXiv 1809.00219) and BasicSR's `ResidualDenseBlock`: conv k (k = 1..4) sees the
    concatenation of the block input and every earlier conv's output and produces
    `growth_channels` maps followed by LeakyReLU(0.2); conv 5 maps back to `num_features`, and the
    result is scaled by `residual_scale` and added to the input. No batch normalisation (ESRGAN
    §3.1: BN causes artefacts). Kernels start He-normal x 0.1 (ESRGAN §3.1: smaller
    initialisation makes the deep residual network easier to train).

    Args:
        num_features: int, channels in and out. Defaults to 64.
        growth_channels: int, channels each inner conv adds. Defaults to 32.
        residual_scale: float, multiplies the residual before the skip sum. Defaults to 0.2.

    Example:
    >>> ResidualDenseBlock(num_features=8, growth_channels=4)(np.zeros((1, 6, 6, 8))).shape
    TensorShape([1, 6, 6, 8])
    """

    def __init__(self, num_features=64, growth_channels=32, residual_scale=0.2, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features
        self.growth_channels = growth_channels
        self.residual_scale = residual_scale
        initializer = scaled_he_normal(0.1)
        # Named attributes, not a list: TensorFlow checkpoints (tf.train.Checkpoint) do not
        # descend into the list wrappers Keras 3 puts around list attributes.
        for index in range(5):
            setattr(self, f"conv{index + 1}", Conv2D(
                growth_channels if index < 4 else num_features,
                3,
                padding="same",
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name=f"conv{index + 1}",
            ))

    @property
    def convs(self):
        return [self.conv1, self.conv2, self.conv3, self.conv4, self.conv5]

    def build(self, input_shape):
        if input_shape[-1] != self.num_features:
            raise ValueError(
                f"ResidualDenseBlock expects {self.num_features} input channels "
                f"(num_features), got input shape {input_shape}"
            )
        spatial = tuple(input_shape[:-1])
        for index, conv in enumerate(self.convs):
            conv.build(spatial + (self.num_features + index * self.growth_channels,))

    def call(self, inputs, training=None):
        if tracing_per_layer():
            return dense_block(inputs, [functools.partial(conv, training=training)
                                        for conv in self.convs], self.residual_scale)
        # The conv layers hold the weights (and their names in checkpoints and weight files);
        # the computation is one traced graph shared by all blocks (see traced_dense_block).
        kernels, biases = conv_weights(self.convs)
        return traced_dense_block(inputs, kernels, biases, self.residual_scale,
                                  weight_gradient_mode(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_features": self.num_features,
                "growth_channels": self.growth_channels,
                "residual_scale": self.residual_scale,
            }
        )
        return config
