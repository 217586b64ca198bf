import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sr.layers import (
    RRDB,
    ClipToUnitRange,
    CropToScaledSize,
    NearestUpsampling,
    PixelShuffle,
    PixelUnshuffle,
    ReflectPadToMultiple,
    ResidualBlock,
    ResidualDenseBlock,
)
from keras_sr.models import RRDBNet
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


def conv3x3_same(images, kernel, bias):
    """Reference 'same' convolution in numpy: images (N, H, W, C), kernel (3, 3, C, F)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    return np.einsum("nhwcab,abcf->nhwf", windows, kernel) + bias


def leaky_relu(x):
    return np.where(x > 0, x, 0.2 * x)


def dense_block_reference(block, x):
    """ESRGAN's residual dense block written out from the paper, with the layer's weights."""
    weights = [conv.get_weights() for conv in block.convs]
    features = [x]
    for kernel, bias in weights[:4]:
        features.append(leaky_relu(conv3x3_same(np.concatenate(features, -1), kernel, bias)))
    residual = conv3x3_same(np.concatenate(features, -1), *weights[4])
    return residual * block.residual_scale + x


def randomize_weights(layer, rng, scale=0.3):
    for variable in layer.weights:
        variable.assign(rng.normal(0, scale, variable.shape).astype("float32"))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pixel_unshuffle_inverts_pixel_shuffle(factor):
    images = random_images((2, 5, 7, 3 * factor * factor))
    shuffled = PixelShuffle(factor)(images)
    assert shuffled.shape == (2, 5 * factor, 7 * factor, 3)
    np.testing.assert_array_equal(PixelUnshuffle(factor)(shuffled), images)


def test_pixel_shuffle_places_channel_blocks_as_subpixels():
    # Channel k of the input lands at sub-pixel (k // (r * C), (k // C) % r): TF's DCR order.
    images = np.arange(1 * 1 * 1 * 12, dtype="float32").reshape(1, 1, 1, 12)
    out = keras.ops.convert_to_numpy(PixelShuffle(2)(images))
    np.testing.assert_array_equal(out[0, 0, 0], [0, 1, 2])
    np.testing.assert_array_equal(out[0, 0, 1], [3, 4, 5])
    np.testing.assert_array_equal(out[0, 1, 0], [6, 7, 8])
    np.testing.assert_array_equal(out[0, 1, 1], [9, 10, 11])


def test_nearest_upsampling_repeats_pixels_for_any_size():
    images = random_images((2, 5, 7, 4))
    expected = images.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(NearestUpsampling(2)(images), expected)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_nearest_upsampling_keeps_the_compute_dtype(policy):
    layer = NearestUpsampling(2, dtype=policy)
    outputs = layer(random_images((1, 3, 3, 2)))
    assert outputs.dtype == layer.compute_dtype != "float32"


@pytest.mark.parametrize("multiple", [2, 4])
@pytest.mark.parametrize("height,width", [(37, 53), (8, 12), (5, 6)])
def test_reflect_pad_to_multiple_matches_numpy_reflect(multiple, height, width):
    images = random_images((1, height, width, 3))
    pad_h, pad_w = -height % multiple, -width % multiple
    expected = np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(ReflectPadToMultiple(multiple)(images), expected)


def test_crop_to_scaled_size_keeps_top_left():
    images = random_images((1, 40, 56, 3))
    reference = np.zeros((1, 37, 53, 3), "float32")
    np.testing.assert_array_equal(CropToScaledSize(1)([images, reference]), images[:, :37, :53])
    assert CropToScaledSize(2)([random_images((1, 80, 112, 3)), reference]).shape == (
        1, 74, 106, 3)


def test_clip_to_unit_range_clips_at_inference_and_trains_on_the_raw_output():
    # BasicSR computes its losses on the unclipped output; keras-sr trains the same way.
    values = tf.constant([-0.5, 0.25, 1.5])
    layer = ClipToUnitRange()
    np.testing.assert_allclose(layer(values), [0.0, 0.25, 1.0])
    for training, expected, expected_gradient in [
            (True, [-0.5, 0.25, 1.5], [1.0, 1.0, 1.0]), (False, [0.0, 0.25, 1.0], [0.0, 1.0, 0.0])]:
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs = layer(values, training=training)
        np.testing.assert_allclose(outputs, expected)
        np.testing.assert_allclose(tape.gradient(outputs, values), expected_gradient)


def test_residual_dense_block_matches_reference(rng):
    block = ResidualDenseBlock(num_features=8, growth_channels=4, residual_scale=0.2)
    images = random_images((2, 6, 5, 8))
    block(images)
    randomize_weights(block, rng)
    np.testing.assert_allclose(block(images), dense_block_reference(block, images), atol=1e-5)


def test_residual_dense_block_init_is_scaled_he_normal():
    block = ResidualDenseBlock(num_features=64, growth_channels=32)
    block.build((None, None, None, 64))
    for index, conv in enumerate(block.convs):
        fan_in = 9 * (64 + 32 * index)
        kernel = keras.ops.convert_to_numpy(conv.kernel)
        # ESRGAN §3.1: He-normal x 0.1, i.e. std 0.1 * sqrt(2 / fan_in).
        np.testing.assert_allclose(kernel.std(), 0.1 * np.sqrt(2 / fan_in), rtol=0.1)


def test_residual_dense_block_rejects_wrong_channels():
    with pytest.raises(ValueError, match="expects 8 input channels"):
        ResidualDenseBlock(num_features=8, growth_channels=4)(random_images((1, 4, 4, 3)))


def test_rrdb_chains_three_dense_blocks_with_outer_residual_scale(rng):
    block = RRDB(num_features=8, growth_channels=4, residual_scale=0.2)
    images = random_images((1, 6, 6, 8))
    block(images)
    randomize_weights(block, rng)
    inner = images
    for dense_block in block.blocks:
        inner = dense_block_reference(dense_block, inner)
    np.testing.assert_allclose(block(images), inner * 0.2 + images, atol=1e-5)


def layer_by_layer_rrdb(block, images):
    """RRDB computed by calling its conv layers one by one, as Keras layers."""
    outputs = images
    for dense in block.blocks:
        features = [outputs]
        for conv in dense.convs[:4]:
            features.append(keras.ops.leaky_relu(
                conv(keras.ops.concatenate(features, axis=-1)), negative_slope=0.2))
        residual = dense.convs[4](keras.ops.concatenate(features, axis=-1))
        outputs = residual * dense.residual_scale + outputs
    return outputs * block.residual_scale + images


def test_rrdb_gradients_match_calling_its_conv_layers(rng):
    # The block runs as one traced graph shared by all blocks (traced_residual_in_residual);
    # its gradients must be those of the conv layers it holds the weights of.
    block = RRDB(num_features=8, growth_channels=4, residual_scale=0.2, dtype="float64")
    images = tf.constant(rng.normal(size=(2, 5, 6, 8)))
    block(images)
    randomize_weights(block, rng)
    gradients = []
    for forward in (block, lambda x: layer_by_layer_rrdb(block, x)):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.sin(forward(images)))
        gradients.append(tape.gradient(loss, [images] + block.trainable_variables))
    assert len(gradients[0]) == 1 + 30
    for traced, reference in zip(*gradients):
        np.testing.assert_allclose(traced, reference, rtol=1e-12, atol=1e-12)


def test_rrdbnet_traces_the_dense_blocks_once_whatever_their_number():
    # Tracing cost must not grow with the trunk: the 15 convolutions of an RRDB live in one
    # shared function, so the step's own graph holds only the head's and tail's convolutions.
    counts = []
    for num_blocks in (1, 3):
        model = RRDBNet(num_blocks=num_blocks, num_features=8, growth_channels=4)

        @tf.function
        def gradient(lr_images):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model(lr_images, training=True))
            return tape.gradient(loss, model.trainable_variables)

        graph = gradient.get_concrete_function(tf.TensorSpec([1, 6, 6, 3])).graph
        op_types = [op.type for op in graph.get_operations()]
        counts.append((op_types.count("Conv2D"), len(graph.as_graph_def().library.function)))
    assert counts[0] == counts[1], counts
    assert counts[0][0] == 6  # conv_first, conv_body, two conv_up, conv_hr, conv_last


def test_residual_block_is_conv_bn_prelu_conv_bn_plus_skip(rng):
    block = ResidualBlock(num_features=4)
    images = random_images((1, 5, 5, 4))
    block(images)
    randomize_weights(block.conv1, rng)
    randomize_weights(block.conv2, rng)
    # Inference-mode BN with unit variance, zero mean, gamma 1, beta 0 is (x / sqrt(1 + eps)).
    scale = 1 / np.sqrt(1 + 1e-5)
    hidden = conv3x3_same(images, *block.conv1.get_weights()) * scale
    hidden = np.where(hidden > 0, hidden, 0.25 * hidden)  # PReLU starts at slope 0.25
    expected = conv3x3_same(hidden, *block.conv2.get_weights()) * scale + images
    np.testing.assert_allclose(block(images, training=False), expected, atol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [
        PixelShuffle(3),
        PixelUnshuffle(4),
        NearestUpsampling(2),
        ReflectPadToMultiple(4),
        CropToScaledSize(2),
        ResidualDenseBlock(8, 4, 0.1),
        RRDB(8, 4, 0.1),
        ResidualBlock(8),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
