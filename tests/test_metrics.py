import keras
import numpy as np
import pytest

from keras_sr.metrics import PSNR, SSIM, gaussian_window, psnr, rgb_to_y, ssim, to_uint8

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


def test_y_channel_is_matlab_rgb2ycbcr_rounded():
    # MATLAB: rgb2ycbcr(uint8([255 255 255])) -> Y 235, black -> 16, pure red -> 81 (81.481).
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]],
                      np.uint8)
    np.testing.assert_array_equal(rgb_to_y(pixels), [[235, 16, 81, 145, 41]])


def test_psnr_of_a_known_error():
    hr = np.full((20, 20, 3), 100, np.uint8)
    sr = hr.copy()
    sr[::2] += 2  # half the pixels off by 2 in every channel: MSE 2
    assert psnr(sr, hr, channel="rgb") == pytest.approx(10 * np.log10(255**2 / 2), abs=1e-12)
    assert psnr(hr, hr) == float("inf")


def test_psnr_crops_the_border():
    hr = np.zeros((20, 20), np.uint8)
    sr = hr.copy()
    sr[:4] = 255  # errors only in the top 4 rows
    assert psnr(sr, hr, border=4) == float("inf")
    assert psnr(sr, hr, border=3) < 20


def test_float_images_are_rounded_to_the_uint8_grid():
    # Halves round up as in MATLAB's im2uint8: 0.5 / 255 -> 1, 2.5 / 255 -> 3.
    np.testing.assert_array_equal(
        to_uint8(np.array([0.0, 0.5 / 255, 2.5 / 255, 1.2, -0.1])), [0, 1, 3, 255, 0])
    hr = np.random.default_rng(0).integers(0, 256, (16, 16, 3)) / 255.0
    # Differences below half a grey level vanish, as in the papers' uint8 evaluation.
    assert psnr(hr + 0.4 / 255, hr) == float("inf")
    assert psnr(hr + 0.6 / 255, hr) < 60


def test_ssim_of_constant_images_has_a_closed_form():
    a, b = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # both variances are zero
    x = np.full((16, 16), int(a), np.uint8)
    y = np.full((16, 16), int(b), np.uint8)
    assert ssim(x, y) == pytest.approx(expected, abs=1e-12)
    assert ssim(x, x) == pytest.approx(1.0)


def brute_force_ssim(x, y):
    """SSIM with a full 2-D Gaussian window over explicit 11x11 patches (no separability)."""
    window = np.outer(gaussian_window(), gaussian_window())
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    patches_x = np.lib.stride_tricks.sliding_window_view(x, (11, 11))
    patches_y = np.lib.stride_tricks.sliding_window_view(y, (11, 11))
    mu_x = (patches_x * window).sum((-1, -2))
    mu_y = (patches_y * window).sum((-1, -2))
    var_x = (patches_x**2 * window).sum((-1, -2)) - mu_x**2
    var_y = (patches_y**2 * window).sum((-1, -2)) - mu_y**2
    cov = (patches_x * patches_y * window).sum((-1, -2)) - mu_x * mu_y
    return (((2 * mu_x * mu_y + c1) * (2 * cov + c2))
            / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))).mean()


def test_ssim_matches_a_brute_force_implementation(rng):
    hr = rng.integers(0, 256, (30, 27, 3)).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 12, hr.shape), 0, 255).astype(np.uint8)
    expected_rgb = np.mean([brute_force_ssim(sr[..., c].astype(float), hr[..., c].astype(float))
                            for c in range(3)])
    assert ssim(sr, hr, channel="rgb") == pytest.approx(expected_rgb, abs=1e-12)
    expected_y = brute_force_ssim(rgb_to_y(sr[2:-2, 2:-2]), rgb_to_y(hr[2:-2, 2:-2]))
    assert ssim(sr, hr, border=2) == pytest.approx(expected_y, abs=1e-12)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def test_keras_metrics_round_halves_up():
    hr = np.zeros((1, 12, 12, 3), "float32")
    sr = np.full((1, 12, 12, 3), 0.5 / 255, "float32")  # rounds to grey level 1, not 0
    metric = PSNR(channel="rgb")
    metric.update_state(hr, sr)
    assert float(metric.result()) == pytest.approx(10 * np.log10(255**2), abs=1e-3)


@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_keras_metrics_agree_with_the_functions(channel, rng):
    hr = rng.random((3, 24, 20, 3)).astype("float32")
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype("float32")
    psnr_metric, ssim_metric = PSNR(border=2, channel=channel), SSIM(border=2, channel=channel)
    psnr_metric.update_state(hr, sr)
    ssim_metric.update_state(hr, sr)
    expected_psnr = np.mean([psnr(s, h, 2, channel) for s, h in zip(sr, hr)])
    expected_ssim = np.mean([ssim(s, h, 2, channel) for s, h in zip(sr, hr)])
    assert float(psnr_metric.result()) == pytest.approx(expected_psnr, abs=1e-3)
    assert float(ssim_metric.result()) == pytest.approx(expected_ssim, abs=1e-4)


def test_keras_metric_config_round_trip():
    metric = PSNR(border=4, channel="rgb", name="val_psnr")
    clone = PSNR.from_config(metric.get_config())
    assert (clone.border, clone.channel, clone.name) == (4, "rgb", "val_psnr")
    assert isinstance(keras.metrics.deserialize(keras.metrics.serialize(metric)), PSNR)
