import functools

import keras

from keras_sr.layers.conv2d import weight_gradient_mode
from keras_sr.layers.residual_dense_block import (
    ResidualDenseBlock,
    conv_weights,
    dense_block_over,
    kernel_shapes,
    shared_graph,
    tracing_per_layer,
    training_form,
)


def residual_in_residual(inputs, blocks, residual_scale):
    """Three dense blocks and the outer skip on tensors; `blocks` each a function of its input."""
    outputs = inputs
    for block in blocks:
        outputs = block(outputs)
    return outputs * residual_scale + inputs


def _traced_blocks(inputs, kernels, biases, residual_scale, gradient, form, shapes):
    blocks = [
        functools.partial(dense_block_over, kernels=block_kernels, biases=block_biases,
                          residual_scale=residual_scale, gradient=gradient, form=form,
                          shapes=block_shapes)
        for block_kernels, block_biases, block_shapes in zip(kernels, biases, shapes)
    ]
    return residual_in_residual(inputs, blocks, residual_scale)


# One graph for every RRDB of a shape (see shared_graph): RRDBNet's 23 blocks trace 15
# convolutions once instead of 345 Keras layer calls.
traced_residual_in_residual = shared_graph(_traced_blocks)


@keras.saving.register_keras_serializable(package="keras_sr")
class RRDB(keras.layers.Layer):
    """Residual-in-residual dense block: three residual dense blocks inside one more skip.

    ESRGAN §3.1, Fig. 4 (arXiv 1809.00219) and BasicSR's `RRDB`. The output of the three blocks is
    scaled by `residual_scale` before the outer skip sum (ESRGAN §3.1: residual scaling 0.2 keeps
    very deep networks stable).

    Args:
        num_features: int, channels in and out. Defaults to 64.
        growth_channels: int, growth of each dense block. Defaults to 32.
        residual_scale: float, inner and outer residual scaling. Defaults to 0.2.

    Example:
    >>> RRDB(num_features=8, growth_channels=4)(np.zeros((1, 6, 6, 8))).shape
    TensorShape([1, 6, 6, 8])
    """

    def __init__(self, num_features=64, growth_channels=32, residual_scale=0.2, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features
        self.growth_channels = growth_channels
        self.residual_scale = residual_scale
        # Named attributes, not a list: TensorFlow checkpoints do not descend into the list
        # wrappers Keras 3 puts around list attributes.
        for index in range(3):
            setattr(self, f"rdb{index + 1}", ResidualDenseBlock(
                num_features,
                growth_channels,
                residual_scale,
                dtype=self.dtype_policy,
                name=f"rdb{index + 1}",
            ))

    @property
    def blocks(self):
        return [self.rdb1, self.rdb2, self.rdb3]

    def build(self, input_shape):
        for block in self.blocks:
            block.build(input_shape)

    def call(self, inputs, training=None):
        if tracing_per_layer():  # see residual_dense_block.per_layer_ops
            return residual_in_residual(
                inputs, [functools.partial(block, training=training) for block in self.blocks],
                self.residual_scale)
        weights = [conv_weights(block.convs) for block in self.blocks]
        return traced_residual_in_residual(
            inputs,
            [kernels for kernels, _ in weights],
            [biases for _, biases in weights],
            self.residual_scale,
            weight_gradient_mode(training),
            training_form(training),
            tuple(kernel_shapes(block.convs) for block in self.blocks),
        )

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
