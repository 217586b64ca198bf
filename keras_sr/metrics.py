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

# MATLAB rgb2ycbcr: Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1].
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
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
    """MATLAB `rgb2ycbcr` luma of a uint8 `(H, W, 3)` image, rounded to integers, as float64."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs an (H, W, 3) image, got shape {image.shape}")
    return round_half_up(image.astype(np.float64) @ Y_WEIGHTS + Y_OFFSET)


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


# --- NIQE -------------------------------------------------------------------------------------
# Mittal, Soundararajan and Bovik, "Making a Completely Blind Image Quality Analyzer", IEEE SPL
# 2013, as the official MATLAB release (niqe_release.zip) computes it. The pristine model
# (keras_sr/data/niqe_pris_params.npz: the release's modelparameters.mat as converted to numpy
# by BasicSR, Apache-2.0) holds its 36-feature mean and covariance and the 7x7 Gaussian window.
NIQE_BLOCK = 96
# MATLAB's estimateaggdparam searches gam = 0.2:0.001:10.
NIQE_GAMMA_GRID = np.arange(0.2, 10.001, 0.001)
# Shifts of the paired products (horizontal, vertical, two diagonals), as circshift takes them.
NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def niqe_model():
    """`(mean [36], covariance [36, 36], gaussian window [7, 7])` of the pristine model."""
    from importlib import resources

    with resources.files("keras_sr.data").joinpath("niqe_pris_params.npz").open("rb") as file:
        data = np.load(file)
        return (data["mu_pris_param"][0].astype(np.float64),
                data["cov_pris_param"].astype(np.float64),
                data["gaussian_window"].astype(np.float64))


def _aggd(values):
    """Asymmetric generalized Gaussian fit of each row of `values` [N, M] (float64), by
    MATLAB's moment matching over the gamma grid: `(alpha, beta_left, beta_right)`."""
    import tensorflow as tf

    grid = tf.constant(NIQE_GAMMA_GRID, tf.float64)
    r_grid = tf.exp(2 * tf.math.lgamma(2 / grid) - tf.math.lgamma(1 / grid)
                    - tf.math.lgamma(3 / grid))
    negative, positive = tf.cast(values < 0, tf.float64), tf.cast(values > 0, tf.float64)
    squares = tf.square(values)
    # An empty side gives 0 / 0 = NaN, as MATLAB's mean of an empty selection.
    left_std = tf.sqrt(tf.reduce_sum(squares * negative, 1) / tf.reduce_sum(negative, 1))
    right_std = tf.sqrt(tf.reduce_sum(squares * positive, 1) / tf.reduce_sum(positive, 1))
    gamma_hat = left_std / right_std
    r_hat = tf.square(tf.reduce_mean(tf.abs(values), 1)) / tf.reduce_mean(squares, 1)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / tf.square(gamma_hat**2 + 1)
    position = tf.argmin(tf.square(r_grid[None, :] - r_hat_norm[:, None]), axis=1)
    # A NaN row: MATLAB's min over all-NaN picks the first grid entry.
    position = tf.where(tf.math.is_nan(r_hat_norm), tf.zeros_like(position), position)
    alpha = tf.gather(grid, position)
    scale = tf.sqrt(tf.exp(tf.math.lgamma(1 / alpha) - tf.math.lgamma(3 / alpha)))
    return alpha, left_std * scale, right_std * scale


def _niqe_block_features(blocks):
    """The 18 features of each MSCN block [N, h, w]: the AGGD shape and mean scale of the
    coefficients, then shape, mean, left and right scales of each of the four paired
    products."""
    import tensorflow as tf

    count = tf.shape(blocks)[0]
    alpha, left, right = _aggd(tf.reshape(blocks, [count, -1]))
    features = [alpha, (left + right) / 2]
    for shift in NIQE_SHIFTS:
        product = blocks * tf.roll(blocks, shift=list(shift), axis=[1, 2])
        alpha, left, right = _aggd(tf.reshape(product, [count, -1]))
        mean = (right - left) * tf.exp(tf.math.lgamma(2 / alpha) - tf.math.lgamma(1 / alpha))
        features += [alpha, mean, left, right]
    return tf.stack(features, axis=1)


def _mscn(image, window):
    """Mean-subtracted contrast-normalised coefficients of an [H, W] float64 image: the local
    mean and deviation from the Gaussian window, with replicated borders (imfilter
    'replicate')."""
    import tensorflow as tf

    half = window.shape[0] // 2
    kernel = tf.constant(window[:, :, None, None], tf.float64)

    def filtered(values):
        padded = tf.concat([tf.repeat(values[:1], half, 0), values,
                            tf.repeat(values[-1:], half, 0)], 0)
        padded = tf.concat([tf.repeat(padded[:, :1], half, 1), padded,
                            tf.repeat(padded[:, -1:], half, 1)], 1)
        return tf.nn.conv2d(padded[None, :, :, None], kernel, 1, "VALID")[0, :, :, 0]

    mu = filtered(image)
    sigma = tf.sqrt(tf.abs(filtered(tf.square(image)) - tf.square(mu)))
    return (image - mu) / (sigma + 1)


def _niqe_graph():
    import tensorflow as tf

    from keras_sr.data.degradations import imresize_tf

    mu_pristine, cov_pristine, window = niqe_model()

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float64)])
    def quality(image):
        rows = tf.shape(image)[0] // NIQE_BLOCK
        columns = tf.shape(image)[1] // NIQE_BLOCK
        image = image[:rows * NIQE_BLOCK, :columns * NIQE_BLOCK]
        features = []
        for scale in (1, 2):
            size = NIQE_BLOCK // scale
            blocks = tf.reshape(_mscn(image, window), [rows, size, columns, size])
            blocks = tf.reshape(tf.transpose(blocks, [0, 2, 1, 3]), [-1, size, size])
            features.append(_niqe_block_features(blocks))
            if scale == 1:
                image = imresize_tf(image[:, :, None] / 255.0, 0.5)[:, :, 0] * 255.0
        features = tf.concat(features, axis=1)
        missing = tf.math.is_nan(features)
        present = tf.cast(~missing, tf.float64)
        mu = tf.reduce_sum(tf.where(missing, tf.zeros_like(features), features), 0) \
            / tf.reduce_sum(present, 0)
        complete = tf.boolean_mask(features, ~tf.reduce_any(missing, axis=1))
        centred = complete - tf.reduce_mean(complete, 0)
        covariance = tf.matmul(centred, centred, transpose_a=True) / tf.cast(
            tf.shape(complete)[0] - 1, tf.float64)
        inverse = tf.linalg.pinv((cov_pristine + covariance) / 2, rcond=1e-15)
        difference = (mu_pristine - mu)[None, :]
        return tf.sqrt(tf.matmul(tf.matmul(difference, inverse), difference,
                                 transpose_b=True))[0, 0]

    return quality


_NIQE = {}


def niqe_blocks(shape, crop_border=0):
    """How many whole 96 x 96 NIQE blocks an image of `shape` holds after the border crop (NIQE
    needs two)."""
    height, width = (max(side - 2 * crop_border, 0) for side in shape[:2])
    return (height // NIQE_BLOCK) * (width // NIQE_BLOCK)


def niqe(image, crop_border=0):
    """NIQE of one image (lower is more natural), as the official MATLAB `niqe` computes it.

    MATLAB's `rgb2ycbcr` Y of the uint8 image (rounded; a grayscale image is used as it is),
    `crop_border` pixels removed from every side, 96 x 96 blocks without overlap (the image
    cropped to whole blocks), MSCN coefficients, 18 asymmetric-generalized-Gaussian features per
    block at two scales (the second from MATLAB-bicubic halving), and the Mahalanobis-like
    distance between the blocks' Gaussian and the pristine one. Computed in float64, in graph
    mode.

    Args:
        image: `(H, W, 3)` RGB or `(H, W)` grayscale, float in [0, 1] or uint8.
        crop_border: pixels cropped from every side first (the SR factor, in SR papers).
    Raises:
        ValueError: the image holds fewer than two whole 96 x 96 blocks after the crop (the
            blocks' covariance needs two).
    """
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        luma = rgb_to_y(image)
    elif image.ndim == 2:
        luma = image.astype(np.float64)
    else:
        raise ValueError(f"niqe needs an (H, W, 3) or (H, W) image, got shape {image.shape}")
    blocks = niqe_blocks(luma.shape, crop_border)
    if crop_border:
        luma = luma[crop_border:-crop_border, crop_border:-crop_border]
    if blocks < 2:
        raise ValueError(
            f"niqe needs at least two whole {NIQE_BLOCK}x{NIQE_BLOCK} blocks; the image is "
            f"{luma.shape[1]}x{luma.shape[0]} after cropping {crop_border} pixels per side")
    if "graph" not in _NIQE:
        _NIQE["graph"] = _niqe_graph()
    return float(_NIQE["graph"](luma))


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
