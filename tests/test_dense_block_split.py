"""Residual dense blocks as split sums (keras_sr.layers.residual_dense_block.split_dense_block):
the same outputs and gradients as the concatenated form, only in training and only where
chosen."""

import numpy as np
import pytest
import tensorflow as tf

from keras_sr import startup
from keras_sr.layers import residual_dense_block
from keras_sr.layers.residual_dense_block import ResidualDenseBlock, dense_block
from keras_sr.models.rrdbnet import RRDBNet
from tests.helpers import traced_calls
from tests.test_conv2d_weight_gradient import gradients

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


@pytest.mark.parametrize("num_features,growth_channels,shape", [
    (8, 4, (2, 5, 7)), (6, 10, (1, 1, 1)), (16, 16, (3, 4, 3))])
def test_the_split_block_computes_the_concatenated_one(num_features, growth_channels, shape):
    rng = np.random.default_rng(0)
    block = ResidualDenseBlock(num_features, growth_channels, residual_scale=0.3,
                               dtype="float64")
    inputs = tf.constant(rng.standard_normal(shape + (num_features,)))
    block.build(inputs.shape)
    for conv in block.convs:  # non-zero biases, so that each one's place is checked
        conv.bias.assign(rng.standard_normal(conv.bias.shape))
    kernels, biases = residual_dense_block.conv_weights(block.convs)
    output_gradient = tf.constant(rng.standard_normal(inputs.shape))
    results = []
    for form in (lambda: dense_block(inputs, residual_dense_block.convs_over(kernels, biases),
                                     0.3),
                 lambda: residual_dense_block.split_dense_block(inputs, kernels, biases, 0.3)):
        with tf.GradientTape() as tape:
            tape.watch([inputs, kernels, biases])
            outputs = form()
        results.append([outputs] + tape.gradient(outputs, [inputs, kernels, biases],
                                                 output_gradient))
    expected, got = results
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[2] + got[3], expected[2] + expected[3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.fixture
def counted(monkeypatch):
    """How many dense blocks were traced in the split form."""
    return traced_calls(monkeypatch, residual_dense_block, "split_dense_block", 0)


@pytest.mark.parametrize("weight_gradient", ["tensorflow", "matmul"])
def test_rrdbnet_trains_on_the_same_gradients_in_either_form(monkeypatch, counted,
                                                             weight_gradient):
    monkeypatch.setenv(startup.WEIGHT_GRADIENT, weight_gradient)
    model = RRDBNet(num_blocks=2, num_features=32, growth_channels=16, dtype="float64")
    images = tf.constant(np.random.default_rng(1).uniform(size=(2, 6, 5, 3)))
    monkeypatch.setenv(startup.DENSE_BLOCK, "concatenate")
    expected = gradients(model, images)
    assert counted == []
    monkeypatch.setenv(startup.DENSE_BLOCK, "split")
    got = gradients(model, images)
    # The trunk's three blocks, traced once and shared by both RRDBs.
    assert len(counted) == 3, counted
    for name, a, b in zip([v.path for v in model.trainable_variables], got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("weight_gradient,form", [("matmul", "concatenate"),
                                                  ("tensorflow", "split"), ("matmul", "split")])
def test_networks_of_other_widths_train_one_after_another(monkeypatch, weight_gradient, form):
    # The trunk's graph is traced once per shape and shared; after a few traces TensorFlow
    # relaxes its tensor arguments' shapes to unknown, and the kernels' channel counts (which
    # choose the weight gradient and the split) must still be known.
    monkeypatch.setenv(startup.WEIGHT_GRADIENT, weight_gradient)
    monkeypatch.setenv(startup.DENSE_BLOCK, form)
    for features, growth, size in ((32, 32, 6), (32, 16, 5), (48, 32, 7), (32, 32, 9)):
        model = RRDBNet(num_blocks=1, num_features=features, growth_channels=growth)
        gradients(model, tf.zeros((1, size, size, 3)))
        block = ResidualDenseBlock(features, growth)
        gradients(block, tf.zeros((1, size, size, features)))


def test_a_lone_dense_block_trains_in_the_split_form_too(monkeypatch, counted):
    monkeypatch.setenv(startup.DENSE_BLOCK, "split")
    block = ResidualDenseBlock(8, 4)
    block(tf.zeros((1, 4, 4, 8)), training=True)
    assert len(counted) == 1


def test_inference_and_per_layer_tracing_keep_the_concatenated_form(monkeypatch, counted):
    monkeypatch.setenv(startup.DENSE_BLOCK, "split")
    model = RRDBNet(num_blocks=1, num_features=16, growth_channels=8)
    images = tf.zeros((1, 4, 4, 3))
    gradients(model, images, training=False)
    model(images)
    # TFLite's per-layer tools read the conv layers' names, which the split form has not.
    gradients(model, images, per_layer=True)
    assert counted == []


def test_an_unknown_form_is_named(monkeypatch):
    monkeypatch.setenv(startup.DENSE_BLOCK, "fused")
    model = RRDBNet(num_blocks=1, num_features=16, growth_channels=8)
    with pytest.raises(ValueError, match="KERAS_SR_DENSE_BLOCK='fused'.*concatenate, split"):
        model(tf.zeros((1, 4, 4, 3)), training=True)
