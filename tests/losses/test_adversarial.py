import numpy as np
import pytest
import tensorflow as tf

from keras_sr.losses.adversarial import (
    relativistic_discriminator_loss,
    relativistic_generator_loss,
    standard_discriminator_loss,
    standard_generator_loss,
)

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


def bce(target, logits):
    probabilities = 1 / (1 + np.exp(-logits))
    return -np.mean(target * np.log(probabilities) + (1 - target) * np.log(1 - probabilities))


REAL = np.array([[1.5], [0.2], [-0.3], [2.0]], "float32")
FAKE = np.array([[-1.0], [0.4], [-2.2], [0.1]], "float32")


def test_standard_losses():
    assert float(standard_discriminator_loss(REAL, FAKE)) == pytest.approx(
        bce(1, REAL) + bce(0, FAKE), rel=1e-5)
    assert float(standard_generator_loss(REAL, FAKE)) == pytest.approx(bce(1, FAKE), rel=1e-5)


def test_relativistic_average_losses_are_basicsrs():
    # BasicSR's esrgan_model.py: each discriminator half weighted 0.5, the generator's two
    # terms averaged (the paper's eq. 1 and 2 write sums).
    real_rel, fake_rel = REAL - FAKE.mean(), FAKE - REAL.mean()
    assert float(relativistic_discriminator_loss(REAL, FAKE)) == pytest.approx(
        0.5 * bce(1, real_rel) + 0.5 * bce(0, fake_rel), rel=1e-5)
    # The generator's loss is symmetric: real images pushed to "less real than fake".
    assert float(relativistic_generator_loss(REAL, FAKE)) == pytest.approx(
        (bce(0, real_rel) + bce(1, fake_rel)) / 2, rel=1e-5)


def test_the_discriminator_loss_holds_the_other_sides_mean_constant():
    # BasicSR detaches E[C(x_f)] in the real half and E[C(x_r)] in the fake half, so the
    # gradient of a real logit comes from its own term only: 0.5 (sigmoid(r - E f) - 1) / n.
    real, fake = tf.constant(REAL), tf.constant(FAKE)
    with tf.GradientTape() as tape:
        tape.watch(real)
        loss = relativistic_discriminator_loss(real, fake)
    expected = 0.5 * (1 / (1 + np.exp(-(REAL - FAKE.mean()))) - 1) / len(REAL)
    np.testing.assert_allclose(tape.gradient(loss, real), expected, rtol=1e-5)
