"""NIQE against the official MATLAB release and BasicSR's MATLAB-matching NIQE on Set5 and
Set14, and its pieces on data with known answers."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_sr import metrics
from keras_sr import niqe as niqe_module

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# MATLAB R2021a `niqe` on Set14 baboon.png[:, :492], on the rounded rgb2ycbcr Y channel, no
# border crop (../shared/reference/README.md). The fixture is that Y channel, saved as an
# 8-bit grayscale PNG from keras_sr.metrics.rgb_to_y of the cropped image.
MATLAB_BABOON_LEFT_492 = 5.72957338


def test_niqe_equals_matlab_on_baboon():
    luma = np.asarray(Image.open(os.path.join(FIXTURES, "baboon_y_left492.png")))
    assert luma.shape == (480, 492)
    assert metrics.niqe(luma) == pytest.approx(MATLAB_BABOON_LEFT_492, abs=1e-5)


REFERENCE = json.load(open(os.path.join(FIXTURES, "niqe", "reference.json")))
# Where BasicSR's float32 storage moves NIQE by more than 1e-3 from double arithmetic (its
# half-size image and its MSCN coefficients are float32; fixtures/niqe/README.md). The other 18
# agree with BasicSR to 1e-3.
BASICSR_FLOAT32_DEPARTS = {"Set14/ppt3.png"}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_niqe_equals_basicsr_on_set5_and_set14(name):
    entry = REFERENCE[name]
    luma = np.asarray(Image.open(os.path.join(FIXTURES, "niqe", entry["luma"])))
    value = niqe_module.niqe(luma)
    # BasicSR's own code in float64 with exact zeros: scipy and torch against TensorFlow, the
    # same arithmetic summed in other orders; with the zeros exact only rounding is left
    # (agreement seen: 2e-12 at worst).
    assert value == pytest.approx(entry["basicsr_float64"], abs=1e-9)
    # BasicSR as published, float32 storage: its rounding moves NIQE by up to 8.5e-4 (head).
    departure = abs(value - entry["basicsr"])
    if name in BASICSR_FLOAT32_DEPARTS:
        assert 1e-3 < departure < 5e-3
    else:
        assert departure < 1e-3


def test_exact_zeros_make_niqe_independent_of_the_filters_summation_order():
    # A flat area and a linear ramp: their MSCN coefficients are zero in exact arithmetic.
    # A residue of either sign (what another summation order leaves) changes nothing.
    image = np.tile(np.concatenate([np.full(96, 80.0), 80.0 + np.arange(96.0)]), (192, 1))
    image[100:140, 20:60] = np.random.default_rng(0).integers(0, 256, (40, 40))
    window = niqe_module.pristine_model()[2]
    coefficients = niqe_module.mscn(tf.constant(image), window).numpy()
    assert (coefficients[:, 3:90][:90] == 0).all() and (coefficients[:, 99:189] == 0).all()
    for seed in (1, 2):
        residues = np.random.default_rng(seed).uniform(-3e-13, 3e-13, image.shape)
        perturbed = niqe_module.mscn(tf.constant(image + residues), window).numpy()
        np.testing.assert_array_equal(perturbed == 0, coefficients == 0)
    assert (coefficients[100:140, 20:60] != 0).mean() > 0.99


@pytest.mark.parametrize("rgb,matlab", [
    # Exactly 52.5: 52.49999999999999 with MATLAB's (1/255) * 65.481, 52.5 (so 53) with
    # 65.481 / 255.
    ((61, 39, 12), 52),
    ((146, 124, 97), 125),  # exactly 125.5, 125.49999999999999 in MATLAB's double; BasicSR 126
    ((173, 218, 155), 185),  # 185.4999882, which BasicSR's float32 Y rounds to 186
    ((0, 0, 0), 16), ((255, 255, 255), 235),
])
def test_y_follows_matlabs_rgb2ycbcr_on_uint8(rgb, matlab):
    # rgb2ycbcr.m on uint8: imlincomb((1/255) * [65.481 128.553 24.966], R, G, B, 16), summed
    # in double in that order, rounded half away from zero (imlincomb.m's portable code). The
    # first three are pixels of Set5 / Set14 where a rule slightly off gives another value.
    pixel = np.array(rgb, np.uint8).reshape(1, 1, 3)
    assert int(niqe_module.luma(pixel)[0, 0]) == matlab
    gray = np.full((5, 5), 77, np.uint8)
    np.testing.assert_array_equal(niqe_module.luma(gray), gray)


def test_an_rgb_image_is_measured_on_its_rounded_y_channel(rng):
    rgb = rng.integers(0, 256, (200, 200, 3)).astype(np.uint8)
    expected = metrics.niqe(niqe_module.luma(rgb))
    assert metrics.niqe(rgb) == expected
    assert metrics.niqe(rgb.astype(np.float32) / 255.0) == expected
    cropped = metrics.niqe(rgb, crop_border=4)
    assert cropped == metrics.niqe(niqe_module.luma(rgb)[4:-4, 4:-4])


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
    fitted = [float(v[0]) for v in niqe_module.aggd(tf.constant(values[None], tf.float64))]
    assert fitted[0] == pytest.approx(alpha, rel=0.03)
    assert fitted[1] == pytest.approx(beta_left, rel=0.03)
    assert fitted[2] == pytest.approx(beta_right, rel=0.03)


def test_mscn_of_a_flat_image_is_zero_and_of_a_step_is_signed():
    flat = np.full((20, 20), 100.0)
    window = niqe_module.pristine_model()[2]
    np.testing.assert_array_equal(niqe_module.mscn(tf.constant(flat), window), 0)
    step = np.where(np.arange(20)[None, :] < 10, 50.0, 150.0).repeat(20, 0)
    mscn = niqe_module.mscn(tf.constant(step), window).numpy()
    assert (mscn[:, 9] < 0).all() and (mscn[:, 10] > 0).all()
    assert (mscn[:, :5] == 0).all() and (mscn[:, 15:] == 0).all()  # replicated borders


def test_the_pristine_model_ships_with_the_package():
    mean, covariance, window = niqe_module.pristine_model()
    assert mean.shape == (36,) and covariance.shape == (36, 36) and window.shape == (7, 7)
    assert math.isclose(window.sum(), 1.0, rel_tol=1e-6)
    np.testing.assert_allclose(covariance, covariance.T)


@pytest.mark.parametrize("shape,crop", [((95, 300), 0), ((96, 96), 0), ((200, 200), 10)])
def test_too_small_images_are_refused_by_size(shape, crop):
    with pytest.raises(ValueError, match="at least two whole 96x96 blocks"):
        metrics.niqe(np.zeros(shape, np.uint8), crop_border=crop)
