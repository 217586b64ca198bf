import contextlib
import functools
import threading

import keras
import tensorflow as tf
from keras import ops

from keras_sr.layers.conv2d import (
    Conv2D,
    conv3x3,
    cpu_training_choice,
    shared_graph,
    weight_gradient_mode,
)
from keras_sr.startup import DENSE_BLOCK_CHOICES, dense_block_choice

SPLIT = DENSE_BLOCK_CHOICES[1]


def training_form(training):
    """SPLIT where this call's dense blocks train in split_dense_block's form
    (`KERAS_SR_DENSE_BLOCK=split`, in training, with no GPU visible), else None."""
    return cpu_training_choice(training, dense_block_choice, SPLIT)


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


def split_dense_block(inputs, kernels, biases, residual_scale):
    """dense_block over weight tensors, without concatenating feature maps.

    Conv k sees feature maps 0..k; its sum over them splits into one convolution per map. So
    each map is convolved once, with the slices of every later kernel that read it stacked
    along the output channels, and each conv's output is the sum of its slices' parts: the
    same products and sums, the same weights (the slices are taken from the block's kernels),
    no concatenated inputs. Under Eigen (oneDNN off) the backward pass over the concatenated
    inputs is slow, and this form trains faster there; with oneDNN's kernels, and in
    inference, it is not faster (keras_sr.startup says by how much; `training_form` says
    where it is used). Its convolutions keep TensorFlow's weight gradient, whatever
    KERAS_SR_CONV_WEIGHT_GRADIENT says: tried once, the matrix products made this form slower
    under Eigen and with oneDNN held to AVX2 (BENCHMARKS.md).
    """
    num_features, growth_channels = kernels[0].shape[2:]
    widths = [num_features] + [growth_channels] * 4
    starts = [sum(widths[:index]) for index in range(5)]
    sums = [None] * 5
    feature = inputs
    for index in range(5):
        later = range(index, 5)  # the convs that read feature map `index`
        kernel = tf.concat([kernels[conv][:, :, starts[index]:starts[index] + widths[index], :]
                            for conv in later], axis=-1)
        parts = tf.split(tf.nn.conv2d(feature, kernel, 1, "SAME"),
                         [kernels[conv].shape[-1] for conv in later], axis=-1)
        for conv, part in zip(later, parts):
            sums[conv] = part if sums[conv] is None else sums[conv] + part
        outputs = tf.nn.bias_add(sums[index], biases[index])
        if index < 4:
            feature = ops.leaky_relu(outputs, negative_slope=0.2)
    return outputs * residual_scale + inputs


def conv_over(kernel, bias, gradient=None):
    """A 'same' 3x3 convolution with bias over given weight tensors, as a Conv2D layer computes;
    `gradient`: keras_sr.layers.conv2d.weight_gradient_mode's choice."""
    return lambda images: conv3x3(images, kernel, bias, gradient)


def convs_over(kernels, biases, gradient=None):
    return [conv_over(kernel, bias, gradient) for kernel, bias in zip(kernels, biases)]


def kernel_shapes(convs):
    """The convolutions' kernel shapes, as Python tuples (for dense_block_over)."""
    return tuple(tuple(conv.kernel.shape) for conv in convs)


def dense_block_over(inputs, kernels, biases, residual_scale, gradient, form, shapes):
    """A dense block over weight tensors: split_dense_block's form where `form` is SPLIT
    (training_form's choice), else dense_block's.

    `shapes`: the kernels' static shapes (kernel_shapes), put back on them. Traced by
    shared_graph, a second trace with other widths makes TensorFlow relax the tensor
    arguments' shapes to unknown, and the kernels' channel counts decide the split and the
    weight gradient; as Python values the shapes are part of the trace's key instead.
    """
    kernels = [tf.ensure_shape(kernel, shape) for kernel, shape in zip(kernels, shapes)]
    if form == SPLIT:
        return split_dense_block(inputs, kernels, biases, residual_scale)
    return dense_block(inputs, convs_over(kernels, biases, gradient), residual_scale)


traced_dense_block = shared_graph(dense_block_over)

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
                                  weight_gradient_mode(training), training_form(training),
                                  kernel_shapes(self.convs))

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
