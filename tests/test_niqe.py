"""NIQE against the official MATLAB release, and its pieces on data with known answers."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_sr import metrics

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# MATLAB R2021a `niqe` on Set14 baboon.png[:, :492], on the rounded rgb2ycbcr Y channel, no
# border crop (../shared/reference/README.md). The fixture is that Y channel, saved as an
# 8-bit grayscale PNG from keras_sr.metrics.rgb_to_y of the cropped image.
MATLAB_BABOON_LEFT_492 = 5.72957338


def test_niqe_equals_matlab_on_baboon():
    luma = np.asarray(Image.open(os.path.join(FIXTURES, "baboon_y_left492.png")))
    assert luma.shape == (480, 492)
    assert metrics.niqe(luma) == pytest.approx(MATLAB_BABOON_LEFT_492, abs=1e-3)


def test_an_rgb_image_is_measured_on_its_rounded_y_channel(rng):
    rgb = rng.integers(0, 256, (200, 200, 3)).astype(np.uint8)
    expected = metrics.niqe(metrics.rgb_to_y(rgb).astype(np.uint8))
    assert metrics.niqe(rgb) == expected
    assert metrics.niqe(rgb.astype(np.float32) / 255.0) == expected
    cropped = metrics.niqe(rgb, crop_border=4)
    assert cropped == metrics.niqe(metrics.rgb_to_y(rgb)[4:-4, 4:-4].astype(np.uint8))


def aggd_samples(rng, alpha, beta_left, beta_right, count=400_000):
    """Draws from an asymmetric generalized Gaussian: |x| / beta ~ Gamma(1 / alpha) ** (1 /
    alpha) on each side, the side chosen in proportion to its beta."""
    magnitude = rng.gamma(1 / alpha, 1.0, count) ** (1 / alpha)
    left = rng.random(count) < beta_left / (beta_left + beta_right)
    return np.where(left, -beta_left * magnitude, beta_right * magnitude)


@pytest.mark.parametrize("alpha,beta_left,beta_right", [(2.0, 1.0, 2.0), (1.0, 0.5, 0.5),
                                                        (0.8, 1.5, 0.7)])
def test_the_aggd_fit_recovers_known_parameters(rng, alpha, beta_left, beta_right):
    values = aggd_samples(rng, alpha, beta_left, beta_right)
    fitted = [float(v[0]) for v in metrics._aggd(tf.constant(values[None], tf.float64))]
    assert fitted[0] == pytest.approx(alpha, rel=0.03)
    assert fitted[1] == pytest.approx(beta_left, rel=0.03)
    assert fitted[2] == pytest.approx(beta_right, rel=0.03)


def test_mscn_of_a_flat_image_is_zero_and_of_a_step_is_signed():
    flat = np.full((20, 20), 100.0)
    np.testing.assert_allclose(metrics._mscn(tf.constant(flat), metrics.niqe_model()[2]), 0,
                               atol=1e-12)
    step = np.where(np.arange(20)[None, :] < 10, 50.0, 150.0).repeat(20, 0)
    mscn = metrics._mscn(tf.constant(step), metrics.niqe_model()[2]).numpy()
    assert (mscn[:, 9] < 0).all() and (mscn[:, 10] > 0).all()
    assert np.abs(mscn[:, :5]).max() < 1e-9 and np.abs(mscn[:, 15:]).max() < 1e-9  # replicated


def test_the_pristine_model_ships_with_the_package():
    mean, covariance, window = metrics.niqe_model()
    assert mean.shape == (36,) and covariance.shape == (36, 36) and window.shape == (7, 7)
    assert math.isclose(window.sum(), 1.0, rel_tol=1e-6)
    np.testing.assert_allclose(covariance, covariance.T)


@pytest.mark.parametrize("shape,crop", [((95, 300), 0), ((96, 96), 0), ((200, 200), 10)])
def test_too_small_images_are_refused_by_size(shape, crop):
    with pytest.raises(ValueError, match="at least two whole 96x96 blocks"):
        metrics.niqe(np.zeros(shape, np.uint8), crop_border=crop)
