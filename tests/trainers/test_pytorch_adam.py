"""PyTorchAdam: torch.optim.Adam's update, in a fused kernel with a trace that stays small."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sr.trainers import PyTorchAdam

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

BETAS = (0.9, 0.99)


def torch_adam_reference(weights, gradients, learning_rates, epsilon=1e-8):
    """torch.optim.Adam's arithmetic (torch/optim/adam.py, single-tensor path) in float64."""
    weights = [w.astype(np.float64) for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for step, (grads, rate) in enumerate(zip(gradients, map(float, learning_rates)), start=1):
        first, second = 1 - BETAS[0] ** step, 1 - BETAS[1] ** step
        for index, grad in enumerate(grads):
            m[index] += (grad - m[index]) * (1 - BETAS[0])
            v[index] = v[index] * BETAS[1] + (1 - BETAS[1]) * grad * grad
            denominator = np.sqrt(v[index]) / np.sqrt(second) + epsilon
            weights[index] -= rate / first * m[index] / denominator
    return weights


def steps(rng, shapes, count):
    # Gradients from 1e-10 (below epsilon: where Keras' Adam and PyTorch's part) to 10.
    return [[rng.standard_normal(shape) * 10.0 ** rng.uniform(-10, 1, shape) for shape in shapes]
            for _ in range(count)]


# float32: the weights (up to ~4) are rounded to 2-5e-7 at every step; misplacing epsilon, as
# Keras' Adam does, moves the weights with the smallest gradients by up to half the rate (5e-4).
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-15), ("float32", 1e-6)])
def test_steps_equal_torch_adams_arithmetic(dtype, tolerance):
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 4, 8), (8,), (17,)]
    start = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = steps(rng, shapes, 5)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [1e-3, 5e-4])
    variables = [keras.Variable(w, dtype=dtype) for w in start]
    optimizer = PyTorchAdam(schedule, *BETAS)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for grads in gradients:
        apply([tf.constant(g, dtype) for g in grads])
    # Steps 0, 1 and 2 at the first rate; Keras keeps rates in float32.
    rates = np.float32([1e-3, 1e-3, 1e-3, 5e-4, 5e-4])
    expected = torch_adam_reference(start, gradients, rates)
    for variable, want in zip(variables, expected):
        # A step moves a weight by up to the learning rate; the tolerance is on the weights.
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), want, rtol=0,
                                   atol=tolerance)


def test_steps_equal_torch_optim_adam():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install "
                                                "keras-sr[torch]); CI installs it")
    rng = np.random.default_rng(1)
    shapes = [(3, 3, 4, 8), (8,)]
    start = [rng.standard_normal(shape) for shape in shapes]
    gradients = steps(rng, shapes, 4)
    parameters = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in start]
    # Keras keeps the learning rate in float32: PyTorch is given the same number.
    reference = torch.optim.Adam(parameters, float(np.float32(1e-3)), betas=BETAS, eps=1e-8)
    variables = [keras.Variable(w, dtype="float64") for w in start]
    optimizer = PyTorchAdam(1e-3, *BETAS)
    for grads in gradients:
        for parameter, grad in zip(parameters, grads):
            parameter.grad = torch.from_numpy(grad)
        reference.step()
        optimizer.apply([tf.constant(g) for g in grads], variables)
    for variable, parameter in zip(variables, parameters):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable),
                                   parameter.detach().numpy(), rtol=0, atol=1e-15)


def operations_per_weight(count):
    variables = [keras.Variable(np.zeros((3, 3, 8, 8), np.float32)) for _ in range(count)]
    optimizer = PyTorchAdam(1e-3)
    optimizer.build(variables)
    grads = [tf.ones((3, 3, 8, 8)) for _ in variables]
    graph = tf.function(lambda: optimizer.apply(grads, variables)).get_concrete_function().graph
    # Captured handles and constants aside: what TensorFlow traces, optimizes and runs.
    return sum(op.type not in ("Placeholder", "Const", "Identity", "NoOp")
               for op in graph.get_operations())


def test_each_weight_adds_one_kernel_to_the_graph():
    # RRDBNet has 702 weights: at the 30 element-wise ops a weight of the unfused update the
    # optimizer was 61% of the training graph and most of the half minute before the first
    # step.
    assert operations_per_weight(12) - operations_per_weight(4) == 8
