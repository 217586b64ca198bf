"""3x3 weight gradients as matrix products (keras_sr.layers.conv2d): the same numbers as
TensorFlow's, only in training and only where chosen."""

import numpy as np
import pytest
import tensorflow as tf

from keras_sr.layers import conv2d
from keras_sr.layers.residual_dense_block import per_layer_ops
from keras_sr.models.rrdbnet import RRDBNet
from keras_sr.models.srresnet import SRResNet
from keras_sr.models.srvgg_compact import SRVGGNetCompact
from tests.helpers import traced_calls


@pytest.mark.parametrize("shape,channels_out", [((2, 5, 7, 3), 4), ((1, 1, 1, 2), 3),
                                                ((3, 6, 4, 8), 5)])
def test_the_matrix_product_weight_gradient_is_tensorflows(shape, channels_out):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.standard_normal(shape))
    kernel = tf.constant(rng.standard_normal((3, 3, shape[-1], channels_out)))
    output_gradient = tf.constant(rng.standard_normal(shape[:-1] + (channels_out,)))
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        outputs = tf.nn.conv2d(images, kernel, 1, "SAME")
    expected = tape.gradient(outputs, kernel, output_gradient)
    got = conv2d.matmul_weight_gradient(images, output_gradient)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.fixture
def counted(monkeypatch):
    """How many convolutions were traced with the matrix-product gradient."""
    return traced_calls(monkeypatch, conv2d, "_conv3x3_matmul_gradient", 1)


def gradients(model, images, training=True, per_layer=False):
    # A fresh function: the choice is read when it is traced.
    @tf.function
    def compute(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(images, training=training) - 0.5))
        return tape.gradient(loss, model.trainable_variables)

    if per_layer:
        with per_layer_ops():
            return [gradient.numpy() for gradient in compute(images)]
    return [gradient.numpy() for gradient in compute(images)]


@pytest.mark.parametrize("per_layer", [False, True])
def test_rrdbnet_trains_on_the_same_gradients_with_either_choice(monkeypatch, counted, per_layer):
    model = RRDBNet(num_blocks=1, num_features=32, growth_channels=32, dtype="float64")
    images = tf.constant(np.random.default_rng(1).uniform(size=(2, 6, 5, 3)))
    monkeypatch.setenv(conv2d.VARIABLE, "tensorflow")
    expected = gradients(model, images, per_layer=per_layer)
    assert counted == []
    monkeypatch.setenv(conv2d.VARIABLE, "matmul")
    got = gradients(model, images, per_layer=per_layer)
    # The trunk's 15 convolutions (traced once, shared) and conv_body, conv_up1, conv_up2,
    # conv_hr; not conv_first (3 channels in) nor conv_last (3 out).
    assert len(counted) == 19, counted
    assert all(min(shape[2:]) >= conv2d.MIN_CHANNELS for shape in counted)
    for name, a, b in zip([v.path for v in model.trainable_variables], got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("build,convolutions", [
    # conv_1 and conv_2; not conv_first (3 channels in) nor conv_last (12 out at x2).
    (lambda: SRVGGNetCompact(scale=2, num_convs=2, num_features=32, dtype="float64"), 2),
    # The block's two, conv_body and conv_up1 (32 -> 128); not the 9x9 conv_first / conv_last.
    (lambda: SRResNet(scale=2, num_blocks=1, num_features=32, dtype="float64"), 4),
])
def test_the_other_generators_train_on_the_same_gradients(monkeypatch, counted, build,
                                                          convolutions):
    model = build()
    images = tf.constant(np.random.default_rng(2).uniform(size=(2, 5, 6, 3)))
    monkeypatch.setenv(conv2d.VARIABLE, "tensorflow")
    expected = gradients(model, images)
    monkeypatch.setenv(conv2d.VARIABLE, "matmul")
    got = gradients(model, images)
    assert len(counted) == convolutions, counted
    for name, a, b in zip([v.path for v in model.trainable_variables], got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


def test_inference_and_narrow_convolutions_keep_tensorflows_gradient(monkeypatch, counted):
    monkeypatch.setenv(conv2d.VARIABLE, "matmul")
    images = tf.zeros((1, 4, 4, 3))
    gradients(RRDBNet(num_blocks=1, num_features=32, growth_channels=32), images,
              training=False)
    assert counted == []
    # Growth 16: the dense blocks' first four convolutions are too narrow; the three fifth ones
    # (96 -> 32) and the four 32 -> 32 outside the trunk are not.
    gradients(RRDBNet(num_blocks=1, num_features=32, growth_channels=16), images)
    assert sorted(shape[2] for shape in counted) == [32] * 4 + [96] * 3


def test_an_unknown_choice_is_named(monkeypatch):
    monkeypatch.setenv(conv2d.VARIABLE, "fast")
    model = RRDBNet(num_blocks=1, num_features=32, growth_channels=32)
    with pytest.raises(ValueError,
                       match="KERAS_SR_CONV_WEIGHT_GRADIENT='fast'.*tensorflow, matmul"):
        model(tf.zeros((1, 4, 4, 3)), training=True)
