import numpy as np
import pytest

from keras_sr.losses.adversarial import (
    relativistic_discriminator_loss,
    relativistic_generator_loss,
    standard_discriminator_loss,
    standard_generator_loss,
)


def bce(target, logits):
    probabilities = 1 / (1 + np.exp(-logits))
    return -np.mean(target * np.log(probabilities) + (1 - target) * np.log(1 - probabilities))


REAL = np.array([[1.5], [0.2], [-0.3], [2.0]], "float32")
FAKE = np.array([[-1.0], [0.4], [-2.2], [0.1]], "float32")


def test_standard_losses():
    assert float(standard_discriminator_loss(REAL, FAKE)) == pytest.approx(
        bce(1, REAL) + bce(0, FAKE), rel=1e-5)
    assert float(standard_generator_loss(REAL, FAKE)) == pytest.approx(bce(1, FAKE), rel=1e-5)


def test_relativistic_average_losses_follow_esrgan_equations():
    real_rel, fake_rel = REAL - FAKE.mean(), FAKE - REAL.mean()
    assert float(relativistic_discriminator_loss(REAL, FAKE)) == pytest.approx(
        bce(1, real_rel) + bce(0, fake_rel), rel=1e-5)
    # The generator's loss is symmetric: real images pushed to "less real than fake".
    assert float(relativistic_generator_loss(REAL, FAKE)) == pytest.approx(
        bce(0, real_rel) + bce(1, fake_rel), rel=1e-5)
