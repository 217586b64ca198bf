import contextlib
import threading

import keras
import tensorflow as tf
from keras import ops


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


def conv_over(kernel, bias):
    """A 'same' 3x3 convolution with bias over given weight tensors, as a Conv2D layer computes."""
    return lambda images: tf.nn.bias_add(tf.nn.conv2d(images, kernel, 1, "SAME"), bias)


def convs_over(kernels, biases):
    return [conv_over(kernel, bias) for kernel, bias in zip(kernels, biases)]


def shared_graph(function):
    """`function` traced once per input shape and dtype, then called as one nested graph.

    RRDBNet's trunk is 23 RRDBs of 3 dense blocks of 5 convolutions. Calling every conv layer
    of every block cost its training step ~3 s of tracing (forward and gradient), and the 20k
    nodes of the inlined graph ~2 s more of Grappler, before the first step ran. Traced once,
    the blocks share one graph (and one gradient graph); kept as a call (`_noinline`), Grappler
    optimises (and fuses) its ~150 nodes once instead of 23 copies. The kernels are the same.
    """
    return tf.function(function, autograph=False, reduce_retracing=True,
                       experimental_attributes={"_noinline": True})


def _dense_block_over(inputs, kernels, biases, residual_scale):
    return dense_block(inputs, convs_over(kernels, biases), residual_scale)


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
            setattr(self, f"conv{index + 1}", keras.layers.Conv2D(
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

    def call(self, inputs):
        if tracing_per_layer():
            return dense_block(inputs, self.convs, self.residual_scale)
        # The conv layers hold the weights (and their names in checkpoints and weight files);
        # the computation is one traced graph shared by all blocks (see traced_dense_block).
        kernels, biases = conv_weights(self.convs)
        return traced_dense_block(inputs, kernels, biases, self.residual_scale)

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
