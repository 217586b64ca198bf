"""MATLAB-compatible bicubic `imresize`, in numpy (float64) and TensorFlow (graph mode).

Super-resolution results are only comparable when LR images are made as the papers made them:
with MATLAB's `imresize(img, scale, 'bicubic')`. It differs from `tf.image.resize` and PIL in
three ways that move PSNR by tenths of a dB: the cubic kernel uses a = -0.5, downscaling widens
the kernel by 1 / scale (antialiasing), and borders are padded symmetrically. Along one axis,
output pixel x (1-based) is centred on input coordinate u = x / scale + 0.5 * (1 - 1 / scale).
MATLAB resizes the height first when both scales are equal; so do these functions.
"""

import math
import sys

import numpy as np

KERNEL_WIDTH = 4.0  # the bicubic kernel's support, in input pixels at scale 1


def output_length(length, scale):
    """MATLAB's `ceil(scale * length)`, robust to 1/3-style rounding of the scale."""
    return max(1, math.ceil(length * scale - 1e-9))


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    absx = np.abs(x)
    absx2, absx3 = absx**2, absx**3
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return near + far


def contributions(in_length, out_length, scale, antialias=True):
    """Weights and 0-based source indices `(out_length, taps)` for resizing one axis.

    Follows MATLAB's `contributions` in imresize.m: normalised kernel weights, symmetric
    ('mirror with edge repeated') index padding, and all-zero tap columns dropped.
    """
    if scale < 1 and antialias:
        width = KERNEL_WIDTH / scale

        def kernel(x):
            return scale * cubic(scale * x)
    else:
        width = KERNEL_WIDTH
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis_numpy(image, axis, scale, out_length, antialias):
    weights, indices = contributions(image.shape[axis], out_length, scale, antialias)
    moved = np.moveaxis(image, axis, 0)
    gathered = moved[indices]  # (out, taps, ...)
    weights = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * weights).sum(axis=1), 0, axis)


def imresize(image, scale=None, output_shape=None, antialias=True):
    """MATLAB `imresize(image, scale, 'bicubic')` on a numpy `(H, W)` or `(H, W, C)` array.

    Computes in float64 and returns float64 without rounding or clipping (MATLAB rounds only
    when its input is an integer image; `quantize` does that).

    Args:
        image: array `(H, W)` or `(H, W, C)`, any real dtype.
        scale: float, the same for both axes, e.g. 0.25 for x4 downscaling.
        output_shape: `(out_h, out_w)`, instead of or besides `scale`.
        antialias: widen the kernel when downscaling, as MATLAB does by default.
    """
    image = np.asarray(image, dtype=np.float64)
    scales, lengths = _plan(image.shape[:2], scale, output_shape)
    for axis in (0, 1):
        image = _resize_axis_numpy(image, axis, scales[axis], lengths[axis], antialias)
    return image


def _plan(size, scale, output_shape):
    if scale is None and output_shape is None:
        raise ValueError("imresize needs a scale or an output_shape")
    if scale is not None and scale <= 0:
        raise ValueError(f"imresize scale must be positive, got {scale!r}")
    if output_shape is None:
        return (scale, scale), tuple(output_length(n, scale) for n in size)
    scales = (scale, scale) if scale is not None else tuple(
        out / n for out, n in zip(output_shape, size))
    return scales, tuple(int(n) for n in output_shape)


def modcrop(image, scale):
    """The top-left part of an `(H, W, ...)` image whose sides are multiples of `scale`, as the
    papers' scripts crop HR images before making their LR ones. Numpy arrays and tensors
    (in the graph) alike."""
    tf = sys.modules.get("tensorflow")  # a tensor exists only once TensorFlow is imported
    size = tf.shape(image)[:2] if tf is not None and tf.is_tensor(image) else image.shape[:2]
    return image[: size[0] - size[0] % scale, : size[1] - size[1] % scale]


def round_half_up(values):
    """MATLAB's `round` on the non-negative pixel range: halves go up (numpy's go to even)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5)


def quantize(image):
    """MATLAB's conversion of a double result back to uint8: round half away, then clip."""
    return np.clip(round_half_up(image), 0, 255).astype(np.uint8)


def quantize_tf(image):
    """`quantize` in TensorFlow: a float [0, 255] image to uint8, halves rounded up."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.floor(image + 0.5), 0.0, 255.0), tf.uint8)


def _contributions_tf(in_length, out_length, scale, antialias):
    """TensorFlow version of `contributions` for a dynamic input length; taps stay static."""
    import tensorflow as tf

    if scale < 1 and antialias:
        width = KERNEL_WIDTH / scale
        kernel_scale = scale
    else:
        width = KERNEL_WIDTH
        kernel_scale = 1.0
    taps = int(math.ceil(width)) + 2
    x = tf.range(1, out_length + 1, dtype=tf.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = tf.floor(u - width / 2)
    indices = left[:, None] + tf.range(taps, dtype=tf.float64)[None, :]
    distance = kernel_scale * (u[:, None] - indices)
    absx = tf.abs(distance)
    near = (1.5 * absx**3 - 2.5 * absx**2 + 1) * tf.cast(absx <= 1, tf.float64)
    far = (-0.5 * absx**3 + 2.5 * absx**2 - 4 * absx + 2) * tf.cast(
        (absx > 1) & (absx <= 2), tf.float64)
    weights = kernel_scale * (near + far)
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    # Symmetric padding: index i (0-based) beyond either edge reflects with the edge repeated.
    period = 2 * tf.cast(in_length, tf.int64)
    wrapped = tf.math.floormod(tf.cast(indices, tf.int64) - 1, period)
    indices = tf.where(wrapped < tf.cast(in_length, tf.int64), wrapped, period - 1 - wrapped)
    return weights, indices, taps


def resample_axis(image, axis, indices, weights):
    """`[H, W, C]` `image` resampled along `axis` (0 or 1): output i is
    sum_t weights[i, t] x image[indices[i, t]], `indices` and `weights` `[out, taps]`. One
    gather per tap keeps memory at one output-sized buffer, where a dense (out x in) matrix
    would multiply mostly zeros; the axis is moved first, as gathering along axis 0 is the
    fast one. A static tap count is unrolled, a dynamic one (adaptive pooling) loops."""
    import tensorflow as tf

    weights = tf.cast(weights, image.dtype)
    moved = image if axis == 0 else tf.transpose(image, [1, 0, 2])

    def add_tap(tap, total):
        return tap + 1, total + tf.gather(moved, indices[:, tap]) * weights[:, tap, None, None]

    total = tf.zeros(tf.concat([tf.shape(indices)[:1], tf.shape(moved)[1:]], 0), image.dtype)
    if indices.shape[1] is not None:
        for tap in range(indices.shape[1]):
            total = add_tap(tap, total)[1]
    else:
        total = tf.while_loop(lambda tap, _: tap < tf.shape(indices)[1], add_tap,
                              (0, total))[1]
    return total if axis == 0 else tf.transpose(total, [1, 0, 2])


def _resize_axis_tf(image, axis, scale, out_length, antialias):
    import tensorflow as tf

    weights, indices, _ = _contributions_tf(tf.shape(image)[axis], out_length, scale, antialias)
    return resample_axis(image, axis, indices, weights)


def imresize_tf(image, scale, antialias=True):
    """MATLAB-compatible bicubic resize of one `(H, W, C)` float image, for use in tf.data.

    Same algorithm as `imresize`; computes the weights in float64 and applies them in the
    image's dtype (float32 agrees with the float64 numpy version to about 1e-5 on [0, 255]).
    The output size is `ceil(scale * size)` for a Python float `scale`.
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    if not image.dtype.is_floating:
        raise TypeError(f"imresize_tf needs a float image, got dtype {image.dtype.name}")
    if scale <= 0:
        raise ValueError(f"imresize_tf scale must be positive, got {scale!r}")
    size = tf.shape(image)[:2]
    out_size = tf.cast(tf.math.ceil(tf.cast(size, tf.float64) * scale - 1e-9), tf.int32)
    for axis in (0, 1):
        image = _resize_axis_tf(image, axis, scale, out_size[axis], antialias)
    return image
