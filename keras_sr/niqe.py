"""NIQE (Mittal, Soundararajan and Bovik, "Making a Completely Blind Image Quality Analyzer",
IEEE SPL 2013) as the official MATLAB release computes it, in float64 and in graph mode.

The steps, each as MATLAB takes it: `rgb2ycbcr` luma of the uint8 image (`imlincomb` with the
weights `(1/255) * [65.481 128.553 24.966]`, summed in that order in double, offset 16, rounded
half away from zero to uint8; a grayscale image is used as it is, as MATLAB's `niqe` takes a 2-D
image); the image cropped to whole 96 x 96 blocks; mean-subtracted contrast-normalised (MSCN)
coefficients from the release's 7x7 Gaussian with replicated borders; 18 asymmetric generalized
Gaussian features per block; the same at half size (MATLAB's antialiased bicubic `imresize`);
and the distance between the blocks' Gaussian and the pristine model's.

**Exact zeros.** Where a 7x7 window is flat, or a linear ramp, the local mean equals the pixel
exactly, so its MSCN coefficient is exactly 0, and the AGGD fit leaves exact zeros out of both
its left and its right side. A filter in floating point leaves a residue of about 1e-13 there
instead, whose sign depends on the order the filter sums in: each residue then counts on one
side, and on images with flat areas NIQE moves by up to 0.37 (Set5's head: scipy's and
TensorFlow's double-precision filters, both correct to 1e-16, give 8.716 and 8.364). So
coefficients within the filter's own rounding bound of zero are set to zero: NIQE is then the
value of exact arithmetic, the same under every filter implementation and CPU. BasicSR's NIQE
(the one SR papers report) gets the same zeros by another route: it filters in double and
stores float32, which rounds the residue away; it agrees with this module to 1e-3 on Set5 and
Set14 (tests/test_niqe.py) except ppt3, where its float32 half-size image departs from MATLAB's
double `imresize` (tests/fixtures/niqe/README.md).

The pristine model (keras_sr/data/niqe_pris_params.npz: the release's modelparameters.mat as
converted to numpy by BasicSR, Apache-2.0) holds the 36-feature mean and covariance and the 7x7
Gaussian window.
"""

import numpy as np

BLOCK = 96
# MATLAB's estimateaggdparam searches gam = 0.2:0.001:10.
GAMMA_GRID = np.arange(0.2, 10.001, 0.001)
# Shifts of the paired products (horizontal, vertical, two diagonals), as circshift takes them.
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# The rounding bound of one filtered value: 49 products summed in any order err by at most
# 49 * eps * sum(|w * x|) <= 49 * 2.2e-16 * 255 = 2.8e-12 on [0, 255] images (the half-size
# image's own rounding adds 8 taps per axis). Measured residues on Set5 / Set14 stay under
# 1e-12; the smallest coefficient that is not zero in exact arithmetic is above 1e-6 at full
# size. 1e-10 sits between the two with two orders of magnitude to spare on each side.
EXACT_ZERO = 1e-10


def luma(image):
    """MATLAB's `rgb2ycbcr` Y of a uint8 `(H, W, 3)` image as uint8 (see the module docstring);
    a `(H, W)` grayscale image passes through. Float images in [0, 1] are rounded first."""
    # keras_sr.metrics re-exports niqe, so it is imported here rather than above.
    from keras_sr.metrics import rgb_to_y, to_uint8

    image = to_uint8(image)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"niqe needs an (H, W, 3) or (H, W) image, got shape {image.shape}")
    return rgb_to_y(image).astype(np.uint8)


def pristine_model():
    """`(mean [36], covariance [36, 36], gaussian window [7, 7])` of the pristine model."""
    from importlib import resources

    with resources.files("keras_sr.data").joinpath("niqe_pris_params.npz").open("rb") as file:
        data = np.load(file)
        return (data["mu_pris_param"][0].astype(np.float64),
                data["cov_pris_param"].astype(np.float64),
                data["gaussian_window"].astype(np.float64))


def aggd(values):
    """Asymmetric generalized Gaussian fit of each row of `values` [N, M] (float64), by
    MATLAB's moment matching over the gamma grid: `(alpha, beta_left, beta_right)`."""
    import tensorflow as tf

    grid = tf.constant(GAMMA_GRID, tf.float64)
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


def block_features(blocks):
    """The 18 features of each MSCN block [N, h, w]: the AGGD shape and mean scale of the
    coefficients, then shape, mean, left and right scales of each of the four paired
    products."""
    import tensorflow as tf

    count = tf.shape(blocks)[0]
    alpha, left, right = aggd(tf.reshape(blocks, [count, -1]))
    features = [alpha, (left + right) / 2]
    for shift in SHIFTS:
        product = blocks * tf.roll(blocks, shift=list(shift), axis=[1, 2])
        alpha, left, right = aggd(tf.reshape(product, [count, -1]))
        mean = (right - left) * tf.exp(tf.math.lgamma(2 / alpha) - tf.math.lgamma(1 / alpha))
        features += [alpha, mean, left, right]
    return tf.stack(features, axis=1)


def mscn(image, window):
    """MSCN coefficients of an [H, W] float64 image: the local mean and deviation from the
    Gaussian window with replicated borders (imfilter 'replicate'); coefficients that are zero
    in exact arithmetic are exactly zero (see the module docstring)."""
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
    centred = image - mu
    centred = tf.where(tf.abs(centred) <= EXACT_ZERO, tf.zeros_like(centred), centred)
    return centred / (sigma + 1)


def _graph():
    import tensorflow as tf

    from keras_sr.data.degradations import imresize_tf

    mu_pristine, cov_pristine, window = pristine_model()

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float64)])
    def quality(image):
        rows = tf.shape(image)[0] // BLOCK
        columns = tf.shape(image)[1] // BLOCK
        image = image[:rows * BLOCK, :columns * BLOCK]
        features = []
        for scale in (1, 2):
            size = BLOCK // scale
            blocks = tf.reshape(mscn(image, window), [rows, size, columns, size])
            blocks = tf.reshape(tf.transpose(blocks, [0, 2, 1, 3]), [-1, size, size])
            features.append(block_features(blocks))
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


_GRAPH = {}


def niqe_blocks(shape, crop_border=0):
    """How many whole 96 x 96 NIQE blocks an image of `shape` holds after the border crop (NIQE
    needs two)."""
    height, width = (max(side - 2 * crop_border, 0) for side in shape[:2])
    return (height // BLOCK) * (width // BLOCK)


def niqe(image, crop_border=0):
    """NIQE of one image (lower is more natural), as the official MATLAB `niqe` computes it on
    MATLAB's Y channel, in exact arithmetic's zeros (see the module docstring).

    Args:
        image: `(H, W, 3)` RGB or `(H, W)` grayscale, float in [0, 1] or uint8.
        crop_border: pixels cropped from every side first (the SR factor, in SR papers).
    Raises:
        ValueError: the image holds fewer than two whole 96 x 96 blocks after the crop (the
            blocks' covariance needs two), or is not `(H, W, 3)` / `(H, W)`.

    Example:
    >>> niqe(np.asarray(PIL.Image.open("baboon.png")))  # 5.7296 on Set14's baboon
    """
    y = luma(image).astype(np.float64)
    blocks = niqe_blocks(y.shape, crop_border)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    if blocks < 2:
        raise ValueError(
            f"niqe needs at least two whole {BLOCK}x{BLOCK} blocks; the image is "
            f"{y.shape[1]}x{y.shape[0]} after cropping {crop_border} pixels per side")
    if "graph" not in _GRAPH:
        _GRAPH["graph"] = _graph()
    return float(_GRAPH["graph"](y))
