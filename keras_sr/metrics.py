"""PSNR and SSIM computed the way the SR papers and BasicSR compute them.

The published tables (SRCNN onwards, SRGAN and ESRGAN included) convert images to uint8, crop
`scale` pixels from every border, take the Y channel of ITU-R BT.601 as MATLAB's `rgb2ycbcr`
returns it for uint8 images (so Y is rounded to an integer), and compute PSNR in float64 on
[0, 255] and SSIM with an 11x11 Gaussian window (sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid'
filtering). BasicSR keeps Y unrounded, which reads about 0.01 dB higher. Grayscale images (Set14's
bridge) are measured on their single channel, without the Y transform.

The functions take images in [0, 1] (float) or uint8, shaped `(H, W, 3)` or `(H, W)`.
"""

import keras
import numpy as np
from keras import ops

from keras_sr.data.degradations import quantize, round_half_up
from keras_sr.niqe import niqe, niqe_blocks  # noqa: F401 (part of the metrics API)

# MATLAB rgb2ycbcr: Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1]; on uint8 it
# takes the weights as (1/255) * [65.481 128.553 24.966] (rgb2ycbcr.m's scaleFactor.uint8.T; the
# first differs in its last bit from 65.481 / 255).
Y_WEIGHTS = (1 / 255) * np.array([65.481, 128.553, 24.966])
Y_OFFSET = 16.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def to_uint8(image):
    """Float images in [0, 1] become uint8 by rounding and clipping; uint8 passes through."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected a float image in [0, 1] or uint8, got dtype {image.dtype}")
    return quantize(image.astype(np.float64) * 255.0)


def rgb_to_y(image):
    """MATLAB `rgb2ycbcr` luma of a uint8 `(H, W, 3)` image, rounded to integers, as float64.

    As MATLAB computes it for uint8 (imlincomb): `w_r * R + w_g * G + w_b * B + 16` summed in
    double in that order, then rounded half away from zero; at exact or near halves the order
    and the weights' last bits decide the integer.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs an (H, W, 3) image, got shape {image.shape}")
    rgb = image.astype(np.float64)
    red, green, blue = Y_WEIGHTS
    return round_half_up(red * rgb[..., 0] + green * rgb[..., 1] + blue * rgb[..., 2]
                         + Y_OFFSET)


def crop_border(image, border):
    if border == 0:
        return image
    if image.shape[0] <= 2 * border or image.shape[1] <= 2 * border:
        raise ValueError(f"image of shape {image.shape} is too small to crop {border} pixels")
    return image[border:-border, border:-border]


def prepare(sr_image, hr_image, border, channel):
    """uint8, matching shapes, border crop, then Y (channel 'y') or RGB, as float64 (H, W, C)."""
    sr_image, hr_image = to_uint8(sr_image), to_uint8(hr_image)
    if sr_image.shape != hr_image.shape:
        raise ValueError(
            f"SR and HR images differ in shape: {sr_image.shape} vs {hr_image.shape}"
        )
    if channel not in ("y", "rgb"):
        raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
    images = []
    for image in (sr_image, hr_image):
        image = crop_border(image, border)
        if image.ndim == 2:  # grayscale: its one channel, without the Y transform
            image = image[..., None].astype(np.float64)
        elif channel == "y":
            image = rgb_to_y(image)[..., None]
        else:
            image = image.astype(np.float64)
        images.append(image)
    return images


def psnr(sr_image, hr_image, border=0, channel="y"):
    """PSNR in dB between two images, papers' protocol (see module docstring).

    Args:
        sr_image, hr_image: `(H, W, 3)` or `(H, W)`, float in [0, 1] or uint8.
        border: pixels cropped from every edge, usually the scale.
        channel: "y" (MATLAB luma, the papers' tables) or "rgb".
    Returns:
        float; `inf` for identical images.
    """
    sr, hr = prepare(sr_image, hr_image, border, channel)
    mse = np.mean((sr - hr) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def gaussian_window(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    window = np.exp(-(offsets**2) / (2 * sigma**2))
    return window / window.sum()


def _filter_valid(image, window):
    """Separable 'valid' filtering of a 2-D array with a 1-D window along both axes."""
    size = len(window)
    rows = sum(window[t] * image[t: image.shape[0] - size + 1 + t] for t in range(size))
    return sum(window[t] * rows[:, t: rows.shape[1] - size + 1 + t] for t in range(size))


def _ssim_channel(x, y):
    window = gaussian_window()
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    sigma_x = _filter_valid(x * x, window) - mu_x**2
    sigma_y = _filter_valid(y * y, window) - mu_y**2
    sigma_xy = _filter_valid(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return ssim_map.mean()


def ssim(sr_image, hr_image, border=0, channel="y"):
    """SSIM (Wang et al. 2004) between two images, papers' protocol; RGB averages channels."""
    sr, hr = prepare(sr_image, hr_image, border, channel)
    if sr.shape[0] < SSIM_WINDOW or sr.shape[1] < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after the "
                         f"border crop, got {sr.shape[:2]}")
    return float(np.mean([_ssim_channel(sr[..., c], hr[..., c]) for c in range(sr.shape[-1])]))


def _round_half_up_tensor(values):
    # ops.round rounds halves to even; MATLAB (and the papers' uint8 images) round them up.
    return ops.floor(values + 0.5)


def _uint8_grid_tensor(images):
    return _round_half_up_tensor(ops.clip(images, 0.0, 1.0) * 255.0)


def _y_channel_tensor(images):
    """Batched MATLAB luma of float [0, 1] RGB images, on the uint8 grid, as float32 [0, 255]."""
    weights = ops.convert_to_tensor(Y_WEIGHTS.astype(np.float32))
    return _round_half_up_tensor(
        ops.sum(_uint8_grid_tensor(images) * weights, axis=-1, keepdims=True) + Y_OFFSET)


def _batched_prepare(hr_images, sr_images, border, channel):
    hr_images = ops.cast(hr_images, "float32")
    sr_images = ops.cast(sr_images, "float32")
    if border:
        hr_images = hr_images[:, border:-border, border:-border, :]
        sr_images = sr_images[:, border:-border, border:-border, :]
    if channel == "y":
        return _y_channel_tensor(hr_images), _y_channel_tensor(sr_images)
    return _uint8_grid_tensor(hr_images), _uint8_grid_tensor(sr_images)


class UInt8GridMetric(keras.metrics.Mean):
    """Mean of a per-image score computed on the papers' uint8 grid (base of PSNR and SSIM)."""

    def __init__(self, border=0, channel="y", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if channel not in ("y", "rgb"):
            raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
        self.border = border
        self.channel = channel

    def per_image(self, hr, sr):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        hr, sr = _batched_prepare(y_true, y_pred, self.border, self.channel)
        return super().update_state(self.per_image(hr, sr), sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"border": self.border, "channel": self.channel})
        return config


@keras.saving.register_keras_serializable(package="keras_sr")
class PSNR(UInt8GridMetric):
    """Mean per-image PSNR for validation during training, on the papers' uint8 grid.

    The same protocol as `psnr` (uint8 rounding, border crop, rounded MATLAB Y), computed in
    float32 in the graph; it agrees with the float64 function to about 1e-4 dB.

    Args:
        border: pixels cropped from every edge, usually the scale. Defaults to 0.
        channel: "y" or "rgb". Defaults to "y".

    Example:
    >>> metric = PSNR(border=4)
    >>> metric.update_state(hr_images, sr_images)
    >>> float(metric.result())
    """

    def __init__(self, border=0, channel="y", name="psnr", **kwargs):
        super().__init__(border=border, channel=channel, name=name, **kwargs)

    def per_image(self, hr, sr):
        mse = ops.mean(ops.square(hr - sr), axis=(1, 2, 3))
        return 10.0 * ops.log(255.0**2 / ops.maximum(mse, 1e-10)) / np.log(10.0)


@keras.saving.register_keras_serializable(package="keras_sr")
class SSIM(UInt8GridMetric):
    """Mean per-image SSIM for validation during training (11x11 Gaussian, sigma 1.5, 'valid').

    The same protocol as `ssim`, in float32 in the graph.

    Args:
        border: pixels cropped from every edge, usually the scale. Defaults to 0.
        channel: "y" or "rgb". Defaults to "y".
    """

    def __init__(self, border=0, channel="y", name="ssim", **kwargs):
        super().__init__(border=border, channel=channel, name=name, **kwargs)

    def per_image(self, hr, sr):
        channels = hr.shape[-1]
        window = gaussian_window().astype(np.float32)
        # Depthwise separable 'valid' Gaussian: (11, 1) then (1, 11), one filter per channel.
        kernel_rows = ops.tile(ops.reshape(window, (SSIM_WINDOW, 1, 1, 1)), (1, 1, channels, 1))
        kernel_cols = ops.tile(ops.reshape(window, (1, SSIM_WINDOW, 1, 1)), (1, 1, channels, 1))

        def blur(x):
            x = ops.depthwise_conv(x, kernel_rows, padding="valid")
            return ops.depthwise_conv(x, kernel_cols, padding="valid")

        c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
        mu_x, mu_y = blur(sr), blur(hr)
        sigma_x = blur(sr * sr) - mu_x**2
        sigma_y = blur(hr * hr) - mu_y**2
        sigma_xy = blur(sr * hr) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
            (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
        return ops.mean(ssim_map, axis=(1, 2, 3))


# --- LPIPS ------------------------------------------------------------------------------------
_LPIPS = {}


def lpips(sr_image, hr_image, net="alex", trunk_weights=None, linear_weights=None):
    """LPIPS v0.1 distance between two images (lower is closer), equal to the `lpips` package;
    see `keras_sr.lpips.LPIPS` for the weights it needs and where it finds them.

    Args:
        sr_image, hr_image: `(H, W, 3)` RGB, float in [0, 1] or uint8, of one shape.
        net: "alex" or "vgg".
        trunk_weights, linear_weights: paths, or None to find them.
    Raises:
        WeightsUnavailable: the trunk or the linear heads cannot be found (says how to supply
            them); ValueError: images of other shapes, or too small for the trunk.
    """
    from keras_sr.lpips import LPIPS

    key = (net, trunk_weights, linear_weights)
    if key not in _LPIPS:
        _LPIPS[key] = LPIPS(net, trunk_weights, linear_weights)
    images = [np.asarray(image) for image in (sr_image, hr_image)]
    images = [image.astype(np.float32) / 255.0 if image.dtype == np.uint8
              else image.astype(np.float32) for image in images]
    return float(_LPIPS[key](*images))
