"""3x3 convolutions that can take their weight gradient as nine matrix products in training.

On an AVX2-only x86 CPU, training runs TensorFlow's oneDNN kernels (keras_sr.startup), and
oneDNN gives the weight gradient of an NHWC convolution (`Conv2DBackpropFilter`) its
`jit:avx2` kernel: about twice the forward convolution's time, half of RRDBNet's step
(`benchmarks.onednn_verbose --train`; PyTorch's oneDNN gets the same kernel on blocked layouts
and takes 2.3x less). The same sum written as nine matrix products, one per kernel tap,

    dW[i, j] = shifted_i,j(x)^T . dy,   x: [N*H*W, C_in] shifted by (i - 1, j - 1),
    dy: [N*H*W, C_out],

runs on oneDNN's matmul: 0.65-0.98x the time at RRDB's trunk shapes and 0.56x at 128 x 128 with
64 channels (`benchmarks.weight_gradient`, 2-core AMD EPYC Zen 3), but 1.49x with 3 output
channels, and slower under Eigen and with oneDNN's AVX-512 kernels (RRDBNet's forward and
backward 1.10x the time in float32, 1.16x in bfloat16 on an AMD EPYC Zen 5). So it is used
only where `KERAS_SR_CONV_WEIGHT_GRADIENT=matmul` (set by `python -m training.fit` on such CPUs,
see keras_sr.startup), in training (`training=True`), with no GPU visible, for 3x3 stride-1
'same' convolutions with at least MIN_CHANNELS channels in and out. The forward pass and the
input gradient are TensorFlow's.
"""


import keras
import tensorflow as tf

from keras_sr.startup import WEIGHT_GRADIENT as VARIABLE  # noqa: F401 (the variable, for callers)
from keras_sr.startup import WEIGHT_GRADIENT_CHOICES as CHOICES
from keras_sr.startup import weight_gradient_choice

MATMUL = CHOICES[1]
# Below this, in or out, oneDNN's own kernel was as fast or faster (3 channels: 1.5x faster).
MIN_CHANNELS = 32


def cpu_training_choice(training, choice, value):
    """`value` where this call trains (`training`), `choice()` (an environment choice read
    from keras_sr.startup) is `value` and no GPU is visible, else None."""
    if not training or choice() != value or tf.config.list_logical_devices("GPU"):
        return None
    return value


def weight_gradient_mode(training):
    """MATMUL where this call's 3x3 convolutions take their weight gradient as matrix products
    (see the module docstring), else None."""
    return cpu_training_choice(training, weight_gradient_choice, MATMUL)


def applies(kernel_shape):
    """Whether a kernel of this shape ([3, 3, in, out]) takes the matrix-product gradient."""
    height, width, channels_in, channels_out = kernel_shape
    return (height, width) == (3, 3) and min(channels_in, channels_out) >= MIN_CHANNELS


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


def matmul_weight_gradient(images, output_gradient):
    """The gradient of a 3x3 stride-1 'same' convolution's kernel, [3, 3, in, out], from its
    input images [N, H, W, in] and the gradient of its output [N, H, W, out]."""
    size, channels_out = tf.shape(images), tf.shape(output_gradient)[-1]
    height, width, channels_in = size[1], size[2], size[3]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    gradient = tf.reshape(output_gradient, [-1, channels_out])
    taps = [
        tf.matmul(tf.reshape(padded[:, row:row + height, column:column + width, :],
                             [-1, channels_in]), gradient, transpose_a=True)
        for row in range(3) for column in range(3)
    ]
    return tf.reshape(tf.stack(taps), [3, 3, channels_in, channels_out])


# One nested graph for every convolution's weight gradient (see shared_graph): inlined into
# each, the taps made rrdb_psnr_x4's first step ~12 s longer (35-39 s against 24-27 s) and
# its peak memory 0.35 GB larger, for no faster step.
traced_matmul_weight_gradient = shared_graph(matmul_weight_gradient)


def _conv3x3(images, kernel, bias):
    return tf.nn.bias_add(tf.nn.conv2d(images, kernel, 1, "SAME"), bias)


@tf.custom_gradient
def _conv3x3_matmul_gradient(images, kernel, bias):
    outputs = _conv3x3(images, kernel, bias)

    def gradient(output_gradient):
        return (
            tf.nn.conv2d_transpose(output_gradient, kernel, tf.shape(images), 1, "SAME"),
            tf.ensure_shape(traced_matmul_weight_gradient(images, output_gradient), kernel.shape),
            tf.reduce_sum(output_gradient, axis=[0, 1, 2]),
        )

    return outputs, gradient


def conv3x3(images, kernel, bias, gradient=None):
    """A 3x3 stride-1 'same' convolution plus bias, as a Conv2D layer computes it; its weight
    gradient as matrix products where `gradient` is MATMUL and the kernel's shape applies."""
    if gradient == MATMUL and applies(kernel.shape):
        return _conv3x3_matmul_gradient(images, kernel, bias)
    return _conv3x3(images, kernel, bias)


@keras.saving.register_keras_serializable(package="keras_sr")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D whose 3x3 stride-1 'same' form takes its weight gradient as matrix
    products in training where that is chosen (see the module docstring); the same layer,
    weights and outputs otherwise.
    """

    def call(self, inputs, training=None):
        if (
            weight_gradient_mode(training) != MATMUL
            or not self.use_bias
            or self.padding != "same"
            or self.data_format != "channels_last"
            or self.groups != 1
            or tuple(self.strides) != (1, 1)
            or tuple(self.dilation_rate) != (1, 1)
            or not applies(self.kernel.shape)
        ):
            return super().call(inputs)
        outputs = conv3x3(inputs, tf.convert_to_tensor(self.kernel),
                          tf.convert_to_tensor(self.bias), MATMUL)
        return outputs if self.activation is None else self.activation(outputs)
