"""The pieces of Real-ESRGAN's degradation model (Wang et al., ICCVW 2021, arXiv 2107.10833
§3.1), in TensorFlow graph mode with stateless, seeded randomness.

Blur kernels as BasicSR's `degradations.py` defines them (isotropic and anisotropic Gaussian,
generalized Gaussian, plateau, and the 2-D sinc / circular low-pass filter), drawn the way its
`random_mixed_kernels` draws them; Gaussian and Poisson noise, in colour or gray; JPEG; and
resizing by a factor with area, bilinear or bicubic interpolation. Every kernel is returned
on a fixed 21 x 21 grid (a smaller kernel zero-padded around the centre, as the recipe pads
every kernel to 21), so shapes stay static in `tf.data` and `tf.function`.

Images are float32 in [0, 1], `[H, W, 3]`. Seeds are `[2]` int tensors (`tf.random.stateless_*`).
"""

import functools
import math

import tensorflow as tf

from keras_sr.data.degradation_options import (  # noqa: F401  (part of this module's API)
    KERNEL_TYPES,
    SECOND_STAGE,
    DegradationOptions,
    KernelOptions,
    StageOptions,
    problems,
)
from keras_sr.data.degradations import resample_axis

KERNEL_GRID = 21


def _grid():
    axis = tf.range(-(KERNEL_GRID // 2), KERNEL_GRID // 2 + 1, dtype=tf.float32)
    xx, yy = tf.meshgrid(axis, axis)
    return xx, yy


def _window(size):
    """1 inside the centred `size` x `size` window of the grid, 0 outside."""
    xx, yy = _grid()
    half = tf.cast(size // 2, tf.float32)
    return tf.cast((tf.abs(xx) <= half) & (tf.abs(yy) <= half), tf.float32)


def _normalised(kernel, size):
    kernel = kernel * _window(size)
    return kernel / tf.reduce_sum(kernel)


def quadratic_form(sigma_x, sigma_y, theta):
    """x^T S^-1 x on the grid, S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T (x is the
    column coordinate, y the row, as BasicSR's mesh grid)."""
    xx, yy = _grid()
    cos, sin = tf.cos(theta), tf.sin(theta)
    # Coordinates in the rotated frame, where S is diagonal.
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    return tf.square(u / sigma_x) + tf.square(v / sigma_y)


def gaussian_kernel(size, sigma_x, sigma_y, theta):
    """exp(-q / 2), normalised: BasicSR's `bivariate_Gaussian`."""
    return _normalised(tf.exp(-0.5 * quadratic_form(sigma_x, sigma_y, theta)), size)


def generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, beta):
    """exp(-q^beta / 2), normalised: BasicSR's `bivariate_generalized_Gaussian`."""
    return _normalised(tf.exp(-0.5 * tf.pow(quadratic_form(sigma_x, sigma_y, theta), beta)),
                       size)


def plateau_kernel(size, sigma_x, sigma_y, theta, beta):
    """1 / (q^beta + 1), normalised: BasicSR's `bivariate_plateau`."""
    return _normalised(1.0 / (tf.pow(quadratic_form(sigma_x, sigma_y, theta), beta) + 1.0),
                       size)


def sinc_kernel(size, cutoff):
    """The 2-D sinc, an ideal circular low-pass filter with `cutoff` in radians (pi is the
    Nyquist frequency), truncated to `size` and normalised: BasicSR's
    `circular_lowpass_kernel`. cutoff * J1(cutoff r) / (2 pi r), cutoff^2 / (4 pi) at r = 0."""
    xx, yy = _grid()
    radius = tf.sqrt(tf.square(xx) + tf.square(yy))
    safe = tf.where(radius > 0, radius, tf.ones_like(radius))
    kernel = cutoff * tf.math.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    kernel = tf.where(radius > 0, kernel, tf.fill(tf.shape(kernel), cutoff**2 / (4 * math.pi)))
    return _normalised(kernel, size)


def _uniform(seed, low, high):
    return tf.random.stateless_uniform([], seed, low, high)


def _beta(seed, beta_range):
    """BasicSR's draw (random_bivariate_generalized_Gaussian / _plateau): U(low, 1) or
    U(1, high) with equal chance, whatever the range. For the plateau's [1, 2] of the
    Real-ESRGAN recipes that is beta = 1 half the time (mean 1.25), not U(1, 2)."""
    low, high = beta_range
    below = tf.random.stateless_uniform([], seed + [0, 1]) < 0.5
    return tf.where(below, _uniform(seed + [0, 2], low, 1.0), _uniform(seed + [0, 3], 1.0, high))


def random_kernel(seed, options=KernelOptions()):
    """A kernel on the 21 x 21 grid drawn as the recipe draws one: a size, then with
    `sinc_probability` a sinc (cutoff in [pi/3, pi], [pi/5, pi] from size 13), else a type by
    `type_probabilities` with its widths, rotation in [-pi, pi] and shape parameter."""
    return random_kernel_and_draws(seed, options)[0]


# What `draws` holds for a kernel: "kernel" indexes KERNEL_NAMES; sigma_y and theta are the
# effective ones (sigma_x and 0 for isotropic kernels), beta 0 where the type has none, cutoff
# 0 unless a sinc.
KERNEL_NAMES = KERNEL_TYPES + ("sinc",)


def random_kernel_and_draws(seed, options=KernelOptions()):
    """`random_kernel`'s kernel and a dict of what was drawn for it (scalar tensors)."""
    seed = tf.convert_to_tensor(seed, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 8)
    sizes = tf.constant(options.sizes, tf.int32)
    size = tf.gather(sizes, tf.random.stateless_uniform([], seeds[0], 0, len(options.sizes),
                                                        dtype=tf.int32))
    sigma_x = _uniform(seeds[1], *options.sigma)
    sigma_y = _uniform(seeds[2], *options.sigma)
    theta = _uniform(seeds[3], -math.pi, math.pi)
    low = tf.where(size < 13, math.pi / 3, math.pi / 5)
    cutoff = low + (math.pi - low) * tf.random.stateless_uniform([], seeds[4])
    logits = tf.math.log(tf.constant([options.type_probabilities], tf.float32))
    kind = tf.random.stateless_categorical(logits, 1, seeds[5])[0, 0]
    generalized_beta = _beta(seeds[6], options.generalized_beta)
    plateau_beta = _beta(seeds[7], options.plateau_beta)
    zero = tf.constant(0.0)
    kernels = [
        gaussian_kernel(size, sigma_x, sigma_x, zero),
        gaussian_kernel(size, sigma_x, sigma_y, theta),
        generalized_gaussian_kernel(size, sigma_x, sigma_x, zero, generalized_beta),
        generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, generalized_beta),
        plateau_kernel(size, sigma_x, sigma_x, zero, plateau_beta),
        plateau_kernel(size, sigma_x, sigma_y, theta, plateau_beta),
    ]
    blur = tf.gather(tf.stack(kernels), kind)
    use_sinc = tf.random.stateless_uniform([], seeds[4] + [0, 7]) < options.sinc_probability
    kernel = tf.where(use_sinc, sinc_kernel(size, cutoff), blur)
    isotropic = kind % 2 == 0
    draws = {
        "kernel": tf.where(use_sinc, tf.constant(len(KERNEL_TYPES), tf.int64), kind),
        "size": size,
        "sigma_x": tf.where(use_sinc, zero, sigma_x),
        "sigma_y": tf.where(use_sinc, zero, tf.where(isotropic, sigma_x, sigma_y)),
        "theta": tf.where(use_sinc | isotropic, zero, theta),
        "beta": tf.where(use_sinc | (kind < 2), zero,
                         tf.where(kind < 4, generalized_beta, plateau_beta)),
        "cutoff": tf.where(use_sinc, cutoff, zero),
    }
    return kernel, draws


def kernel_spectrum(kernel, size, dtype=tf.float32):
    """The FFT of the flipped square `kernel` zero-padded to `size` (`[height, width]`): what
    `correlate_padded` multiplies by; compute it once for several planes of one size."""
    side = kernel.shape[0]
    flipped = tf.pad(tf.cast(kernel, dtype)[::-1, ::-1],
                     [[0, size[0] - side], [0, size[1] - side]])
    return tf.signal.rfft2d(flipped, size)


def correlate_padded(planes, kernel, spectrum=None):
    """`planes` (`[..., H + 2 h, W + 2 h]`, already padded by h on each side) correlated with
    the square `kernel` (side 2 h + 1) to `[..., H, W]`, through the FFT: the cost does not
    grow with the kernel, 2-4x faster than depthwise convolutions for the 21 x 21 blur and
    the 51 x 51 sharpening on a 400 x 400 crop (2 cores). The circular convolution with the
    flipped kernel equals the correlation from index 2 h on, past the wrap-around. Pass the
    kernel's `spectrum` for this size if already computed."""
    side = kernel.shape[0]
    size = tf.shape(planes)[-2:]
    if spectrum is None:
        spectrum = kernel_spectrum(kernel, size, planes.dtype)
    product = tf.signal.rfft2d(planes, size) * spectrum
    return tf.signal.irfft2d(product, size)[..., side - 1:, side - 1:]


def reflect_pad(tensor, half, axes):
    """`tensor` padded by `half` on both sides of each of `axes`, mirrored about the edge
    sample (`tf.pad(mode="REFLECT")`, OpenCV's BORDER_REFLECT_101), as reversed slices and a
    concatenation: 4-5x faster than TensorFlow's MirrorPad kernel on a 400 x 400 crop (one
    core). Each padded side must be longer than `half`."""
    for axis in axes:
        check = tf.debugging.assert_greater(
            tf.shape(tensor)[axis], half, message=f"reflect_pad: a side is not longer than {half}")
        with tf.control_dependencies([check]):
            tensor = tf.identity(tensor)

        def along(start, stop, axis=axis):
            return tf.reverse(tensor[(slice(None),) * axis + (slice(start, stop),)], [axis])
        tensor = tf.concat([along(1, half + 1), tensor, along(-half - 1, -1)], axis)
    return tensor


def filter_image(image, kernel):
    """`image` correlated with `kernel` (21 x 21), each channel alone, reflected borders
    (BasicSR's filter2D)."""
    return tf.transpose(filter_planes(tf.transpose(image, [2, 0, 1]), kernel), [1, 2, 0])


def _plane_by_plane(planes, function, separately):
    """`function` of `planes` (`[..., C, H, W]`, C known), or when `separately` of each
    plane alone, concatenated: one plane's transforms stay in a core's cache, 7-12% faster
    for 3 planes of 400 x 400 (one core, Zen 5). An unknown plane count: all at once."""
    if not separately or planes.shape[-3] is None:
        return function(planes)
    return tf.concat([function(planes[..., index:index + 1, :, :])
                      for index in range(planes.shape[-3])], -3)


def filter_planes(planes, kernel, separately=False):
    """`filter_image` of the image channels first (`[C, H, W]`), as the FFT wants it; each
    plane alone when `separately` (see `_plane_by_plane`)."""
    half = KERNEL_GRID // 2

    def one_pixel_at_a_time():
        # An image no larger than the padding (a deep downscale of a small patch): reflect
        # needs padding below the size, so widen it a pixel per step, mirroring the edge.
        padded = planes
        for _ in range(half):
            padded = tf.pad(padded, [[0, 0], [1, 1], [1, 1]], mode="SYMMETRIC")
        return padded

    padded = tf.cond(tf.reduce_min(tf.shape(planes)[1:]) > half,
                     lambda: reflect_pad(planes, half, [1, 2]),
                     one_pixel_at_a_time)
    spectrum = kernel_spectrum(kernel, tf.shape(padded)[1:], padded.dtype)
    return _plane_by_plane(padded, lambda plane: correlate_padded(plane, kernel, spectrum),
                           separately)


def gaussian_noise(image, sigma, seed, gray=False):
    """`image` plus zero-mean Gaussian noise of standard deviation `sigma` / 255, the same on
    every channel when `gray`; not clipped."""
    shape = tf.shape(image)
    noise_shape = tf.concat([shape[:2], [1]], 0) if gray else shape
    noise = standard_normal(noise_shape, seed) * (sigma / 255.0)
    return image + noise  # gray noise broadcasts over the channels


def standard_normal(shape, seed):
    """Standard normal float32 values (`seed` a stateless seed): the Box-Muller transform of
    uniforms, radius sqrt(-2 ln(1 - u)) with u on [0, 1) (so at most 5.65). What
    `tf.random.stateless_normal` does too, but 1.7x faster on one core (3.3 against 5.5 ms for
    336 x 336 x 3 values, Zen 5)."""
    count = tf.reduce_prod(shape)
    uniforms = tf.random.stateless_uniform([2, (count + 1) // 2], seed)
    radius = tf.sqrt(-2.0 * tf.math.log(1.0 - uniforms[0]))
    angle = (2.0 * math.pi) * uniforms[1]
    values = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], 0)
    return tf.reshape(values[:count], shape)


# torchvision's `rgb_to_grayscale` weights (ITU-R BT.601 luma, its rounding of 0.299): what
# BasicSR's gray Poisson noise draws on.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _levels(grid):
    """The count of distinct values of an image on the 8-bit grid (`grid` holds 0-255 whole
    numbers), rounded up to a power of two: BasicSR's photon-count scale for Poisson noise."""
    counts = tf.math.bincount(tf.cast(grid, tf.int32), minlength=256)
    levels = tf.cast(tf.math.count_nonzero(counts), tf.float32)
    return tf.pow(2.0, tf.math.ceil(tf.math.log(levels) / math.log(2.0)))


# Counts past this are never drawn: at the largest rate, 256 (256 levels, white), the
# probability of 512 or more is below 1e-50.
_POISSON_COUNTS = 512


def _poisson_cdf_pairs(levels):
    """`pairs[g * (size + 1) + j] = (cdf[j - 1], cdf[j])` for the rate g / 255 * `levels`
    (g = 0..255, j = 0..size, size = _POISSON_COUNTS): cdf[-1] reads -1 and cdf[size] 2,
    below / above every draw. float64, [256 * (size + 1), 2]."""
    size = _POISSON_COUNTS
    counts = tf.range(size, dtype=tf.float64)
    rates = tf.range(256, dtype=tf.float64)[:, None] / 255.0 * tf.cast(levels, tf.float64)
    log_pmf = counts * tf.math.log(tf.maximum(rates, 1e-300)) - rates \
        - tf.math.lgamma(counts + 1.0)
    # A zero rate puts all its mass on 0 (0 log 0 = 0).
    zero_rate = tf.where(counts > 0.0, tf.constant(-math.inf, tf.float64),
                         tf.constant(0.0, tf.float64))
    cdf = tf.cumsum(tf.exp(tf.where(rates > 0.0, log_pmf, zero_rate)), axis=1)
    below = tf.fill([256, 1], tf.constant(-1.0, tf.float64))
    above = tf.fill([256, 1], tf.constant(2.0, tf.float64))
    return tf.reshape(tf.stack([tf.concat([below, cdf], 1), tf.concat([cdf, above], 1)], -1),
                      [-1, 2])


@functools.cache
def _full_levels_table():
    """`_poisson_cdf_pairs(256)` as a numpy array, computed once per process (eagerly, even
    while a graph is traced): 256 levels is what nearly every photo has, and building the
    table is a fixed cost of about 2.5 ms (one core) each time noise is drawn."""
    with tf.init_scope():
        return _poisson_cdf_pairs(tf.constant(256.0)).numpy()


def poisson_on_grid(grid, levels, seed):
    """Poisson counts with rates `grid / 255 * levels` (`grid` whole numbers 0-255, `levels` a
    scalar, a power of two), drawn by inverting each rate's distribution function: the rates
    take 256 values, so their CDFs form one table (computed once for 256 levels), and a
    uniform draw's count is the number of CDF values below it. The normal approximation's
    quantile (Cornish-Fisher) guesses the count; one gather of the two CDF values around the
    guess confirms it for all but about 1 pixel in 200, which a search then steps to the
    exact count. Exact Poisson, as `tf.random.stateless_poisson`, and faster than its
    rejection sampler."""
    size = _POISSON_COUNTS
    levels = tf.cast(levels, tf.float32)
    pairs = tf.cond(tf.equal(levels, 256.0), lambda: tf.constant(_full_levels_table()),
                    lambda: _poisson_cdf_pairs(levels))

    rows = tf.cast(grid, tf.int32)
    uniform = tf.random.stateless_uniform(tf.shape(grid), seed, dtype=tf.float64)
    # The guess only starts the search: float32 (float64's ndtri is 5x slower).
    rate = tf.cast(grid, tf.float32) / 255.0 * levels
    z = tf.math.ndtri(tf.clip_by_value(tf.cast(uniform, tf.float32), 1e-30, 1.0 - 1e-7))
    guess = tf.round(rate + tf.sqrt(rate) * z + (z * z - 1.0) / 6.0)
    guess = tf.cast(tf.clip_by_value(guess, 0.0, size - 1.0), tf.int32)
    pair = tf.gather(pairs, rows * (size + 1) + guess)
    # The guess is the count when cdf[guess - 1] < draw <= cdf[guess]; the rest (1 in 200 on
    # a photo) search from it.
    unsettled = tf.where((pair[..., 0] >= uniform) | (pair[..., 1] < uniform))

    def cdf_at(row, count):  # cdf[row, count] for count in [-1, size]
        at = tf.gather(pairs, row * (size + 1) + tf.maximum(count, 0))[..., 1]
        return tf.where(count < 0, tf.constant(-1.0, tf.float64), at)

    def step(row, draw, count):
        down = cdf_at(row, count - 1) >= draw
        up = cdf_at(row, count) < draw
        return tf.where(down, -1, tf.where(up, 1, 0))

    row, draw = tf.gather_nd(rows, unsettled), tf.gather_nd(uniform, unsettled)
    start = tf.gather_nd(guess, unsettled)
    found, _ = tf.while_loop(
        lambda found, moves: tf.reduce_any(moves != 0),
        lambda found, moves: (found + moves, step(row, draw, found + moves)),
        (start, step(row, draw, start)))
    count = tf.tensor_scatter_nd_update(guess, unsettled, found)
    return tf.cast(count, tf.float32)


def poisson_noise(image, scale, seed, gray=False):
    """`image` plus Poisson (shot) noise as BasicSR's `generate_poisson_noise_pt` draws it:
    the image rounded to the 8-bit grid (x), counts ~ Poisson(x * n), noise (counts / n - x)
    times `scale`, n the number of distinct levels of x rounded up to a power of two. When
    `gray`, x is the luma of the unrounded image (torchvision's weights) rounded to the grid,
    and its noise is added to every channel; n then counts gray levels, which is what makes
    gray noise as strong as the reference's."""
    source = image
    if gray:
        source = tf.reduce_sum(image * tf.constant(GRAY_WEIGHTS, image.dtype), -1,
                               keepdims=True)
    grid = tf.clip_by_value(tf.round(source * 255.0), 0.0, 255.0)
    quantised = grid / 255.0
    levels = _levels(grid)
    counts = tf.cast(poisson_on_grid(grid, levels, seed), image.dtype)
    noise = (counts / levels - quantised) * scale
    return image + noise  # gray noise broadcasts over the channels


# DiffJPEG's tables (BasicSR's diffjpeg.py): the standard JPEG luminance and chrominance
# tables of ITU T.81 Annex K, which DiffJPEG applies transposed (row = horizontal frequency).
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99))
_CHROMA_CORNER = ((17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56, 99), (47, 66, 99, 99))
_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def _jpeg_constants():
    """The tables as [64] rows and the DCT and its inverse as [64, 64] matrices on flattened
    8 x 8 blocks (DiffJPEG's tensordot over a [8, 8, 8, 8] cosine tensor is this matmul)."""
    luma = tf.reshape(tf.transpose(tf.constant(_LUMA_TABLE, tf.float32)), [64])
    chroma = tf.reshape(tf.transpose(tf.pad(tf.constant(_CHROMA_CORNER, tf.float32) - 99.0,
                                            [[0, 4], [0, 4]]) + 99.0), [64])
    steps = tf.range(8, dtype=tf.float32)
    # cosines[position, frequency] = cos((2 position + 1) frequency pi / 16)
    cosines = tf.cos((2.0 * steps[:, None] + 1.0) * steps[None] * math.pi / 16.0)
    # basis[(x, y), (u, v)] = cosines[x, u] cosines[y, v]
    basis = tf.reshape(cosines[:, None, :, None] * cosines[None, :, None, :], [64, 64])
    alpha = tf.concat([[1.0 / math.sqrt(2.0)], tf.ones([7])], 0)
    scale = 0.25 * tf.reshape(alpha[:, None] * alpha[None], [64])
    return luma, chroma, basis, scale


def _blocks(planes):
    """[P, H, W] (multiples of 8) -> [P x H/8 x W/8, 64], plane by plane, each plane's blocks
    in raster order."""
    shape = tf.shape(planes)
    blocks = tf.reshape(planes, [shape[0], shape[1] // 8, 8, shape[2] // 8, 8])
    return tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4]), [-1, 64])


def _unblocks(blocks, planes, height, width):
    blocks = tf.reshape(blocks, [planes, height // 8, width // 8, 8, 8])
    return tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4]), [planes, height, width])


def _combine(planes, matrix, offsets=(0.0, 0.0, 0.0)):
    """The three planes `matrix` (3 x 3 rows) makes of `planes` (three [H, W]), plus
    `offsets`, term by term: a [N, 3] x [3, 3] matmul is 3-4x slower on a CPU."""
    return [sum(weight * plane for weight, plane in zip(row, planes) if weight) + offset
            for row, offset in zip(matrix, offsets)]


def jpeg_factor(quality):
    """DiffJPEG's quality_to_factor: 50 / quality below 50, else 2 - quality / 50 (libjpeg's
    scaling, without its rounding and clamping of the tables)."""
    quality = tf.cast(quality, tf.float32)
    return tf.where(quality < 50.0, 5000.0 / quality, 200.0 - 2.0 * quality) / 100.0


def jpeg(image, quality):
    """JPEG compression and decompression as Real-ESRGAN applies it (BasicSR's DiffJPEG with
    rounding, a port of its arithmetic): `quality` a float, the image clipped to [0, 1] and
    zero-padded to multiples of 16, YCbCr with 2 x 2 averaged chroma, 8 x 8 DCT, the tables
    times `jpeg_factor(quality)`, round half to even, the inverse, chroma repeated 2 x 2,
    clipped. No 8-bit rounding of the input, unlike an encoder. Works plane by plane."""
    luma_table, chroma_table, basis, scale = _jpeg_constants()
    factor = jpeg_factor(quality)
    image = tf.clip_by_value(tf.convert_to_tensor(image, tf.float32), 0.0, 1.0)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    padded = tf.pad(image, [[0, (-height) % 16], [0, (-width) % 16], [0, 0]])
    padded_height, padded_width = tf.shape(padded)[0], tf.shape(padded)[1]
    half_height, half_width = padded_height // 2, padded_width // 2
    luma, blue, red = _combine(tf.unstack(padded * 255.0, num=3, axis=-1), _TO_YCBCR,
                               (0.0, 128.0, 128.0))
    chroma = tf.nn.avg_pool2d(tf.stack([blue, red])[..., None], 2, 2, "VALID")[..., 0]
    # Every block of the three planes in one pair of matmuls, each with its plane's table.
    blocks = tf.concat([_blocks(luma[None]), _blocks(chroma)], 0)
    luma_count = (padded_height // 8) * (padded_width // 8)
    tables = factor * tf.concat([tf.tile(luma_table[None], [luma_count, 1]),
                                 tf.tile(chroma_table[None], [luma_count // 2, 1])], 0)
    coefficients = scale * tf.matmul(blocks - 128.0, basis)
    quantised = tf.round(coefficients / tables) * tables
    spatial = tf.matmul(quantised * scale, basis, transpose_b=True) + 128.0
    luma = _unblocks(spatial[:luma_count], 1, padded_height, padded_width)[0]
    chroma = _unblocks(spatial[luma_count:], 2, half_height, half_width) - 128.0
    # Each chroma value on its 2 x 2 pixels (tf.repeat twice, as one broadcast).
    chroma = tf.reshape(tf.broadcast_to(chroma[:, :, None, :, None],
                                        [2, half_height, 2, half_width, 2]),
                        [2, padded_height, padded_width])
    rgb = tf.stack(_combine([luma, chroma[0], chroma[1]], _TO_RGB), -1)
    return tf.clip_by_value(rgb, 0.0, 255.0)[:height, :width] / 255.0


RESIZE_METHODS = ("area", "bilinear", "bicubic")

# PyTorch's bicubic convolution constant (Keys' a; MATLAB and TensorFlow use -0.5).
TORCH_CUBIC_A = -0.75


def _source_taps(in_size, out_size, method, scale_factor=None):
    """`(indices, weights)`, both `[out_size, taps]`: output pixel i along one axis is
    sum_t weights[i, t] * input[indices[i, t]], as PyTorch's `F.interpolate(mode=method,
    align_corners=False)` (no antialias) computes it.

    Bilinear and bicubic map output pixel i to the input coordinate (i + 0.5) * r - 0.5 with
    r = 1 / scale_factor when a factor is given (even where the floored size makes the true
    ratio differ), else in_size / out_size; bilinear clamps a negative coordinate to 0 and
    takes the two pixels around it, bicubic takes four with a = -0.75 and repeats the edge
    pixels past the border. "area" is adaptive average pooling: output pixel i averages input
    pixels floor(i * in / out) to ceil((i + 1) * in / out) - 1."""
    in_size = tf.cast(in_size, tf.int32)
    out_size = tf.cast(out_size, tf.int32)
    last = in_size - 1
    if method == "area":
        outputs = tf.range(out_size)
        start = (outputs * in_size) // out_size
        end = ((outputs + 1) * in_size + out_size - 1) // out_size
        taps = tf.reduce_max(end - start)
        indices = start[:, None] + tf.range(taps)[None]
        inside = indices < end[:, None]
        weights = tf.cast(inside, tf.float32) / tf.cast(end - start, tf.float32)[:, None]
        return tf.minimum(indices, last), weights
    if scale_factor is None:
        ratio = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    else:
        ratio = tf.cast(1.0 / tf.cast(scale_factor, tf.float64), tf.float32)
    # ratio * (i + 0.5) - 0.5 rounded once, as PyTorch's kernels compute it (a fused
    # multiply-add): the float32 ratio's product is exact in float64.
    source = tf.cast(tf.cast(ratio, tf.float64) * (tf.cast(tf.range(out_size), tf.float64)
                                                    + 0.5) - 0.5, tf.float32)
    if method == "bilinear":
        source = tf.maximum(source, 0.0)
        low = tf.cast(tf.floor(source), tf.int32)
        fraction = source - tf.floor(source)
        high = tf.where(low < last, low + 1, low)
        return tf.stack([low, high], 1), tf.stack([1.0 - fraction, fraction], 1)
    if method == "bicubic":
        low = tf.floor(source)
        t = source - low
        a = TORCH_CUBIC_A

        def near(x):  # |x| <= 1
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

        def far(x):  # 1 < |x| < 2
            return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

        weights = tf.stack([far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)], 1)
        indices = tf.cast(low, tf.int32)[:, None] + tf.range(-1, 3)[None]
        return tf.clip_by_value(indices, 0, last), weights
    raise ValueError(f"method must be one of {RESIZE_METHODS}, got {method!r}")


def interpolate(image, size, method, scale_factor=None):
    """`image` ([H, W, C] float) resized to `size` ([height, width]) as PyTorch's
    `F.interpolate(image, size=size or scale_factor=..., mode=method, align_corners=False)`
    computes it (see `_source_taps`): Real-ESRGAN's degradations resize this way. Pass the
    factor that made `size` as `scale_factor` to map coordinates by it, as `F.interpolate
    (scale_factor=...)` does."""
    image = tf.convert_to_tensor(image, tf.float32)
    size = tf.convert_to_tensor(size, tf.int32)
    for axis in (0, 1):
        indices, weights = _source_taps(tf.shape(image)[axis], size[axis], method,
                                        scale_factor)
        image = resample_axis(image, axis, indices, weights)
    return image


def resize_by(image, factor, method):
    """`image` resized by `factor` with "area", "bilinear" or "bicubic", as PyTorch's
    `F.interpolate(scale_factor=factor)`: floor(side x factor) pixels (at least 1), sampled at
    coordinates mapped by 1 / factor."""
    return interpolate(image, _scaled_size(tf.shape(image)[:2], factor), method, factor)


def _scaled_size(size, factor):
    """floor(size x factor), at least 1: the sizes of PyTorch's `F.interpolate(scale_factor=)`."""
    product = tf.cast(size, tf.float64) * tf.cast(factor, tf.float64)  # as PyTorch: in double
    return tf.maximum(tf.cast(tf.floor(product), tf.int32), 1)


def _choose(seed, probabilities):
    logits = tf.math.log(tf.constant([probabilities], tf.float32))
    return tf.random.stateless_categorical(logits, 1, seed)[0, 0]


def _random_factor(direction_seed, factor_seed, stage):
    """Up (from [1, high]), down (from [low, 1]) or keep, by `stage.resize_probabilities`."""
    low, high = stage.resize_range
    direction = _choose(direction_seed, stage.resize_probabilities)
    return tf.gather(tf.stack([_uniform(factor_seed, 1.0, high),
                               _uniform(factor_seed, low, 1.0), tf.constant(1.0)]), direction)


def _resize_seeds_and_method(seed):
    """The seeds of a random resize's direction and factor, and its interpolation (an index
    into RESIZE_METHODS)."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    return seeds, tf.random.stateless_uniform([], seeds[2], 0, len(RESIZE_METHODS),
                                              dtype=tf.int32)


def _random_resize(image, seed, stage, size=None):
    """Up / down / keep by a factor (coordinates mapped by it, as `F.interpolate
    (scale_factor=)`), or to `size`; a random interpolation. With the draws: "method" indexes
    RESIZE_METHODS, "size" is the [height, width] reached."""
    seeds, method = _resize_seeds_and_method(seed)
    factor = None
    if size is None:
        factor = _random_factor(seeds[0], seeds[1], stage)
        size = _scaled_size(tf.shape(image)[:2], factor)
    branches = [lambda m=m: interpolate(image, size, m, factor) for m in RESIZE_METHODS]
    return tf.switch_case(method, branches), {"method": method, "size": size}


def _random_noise(image, seed, stage):
    """Gaussian or Poisson noise, colour or gray; the draws: "gaussian" and "gray" (bool),
    "sigma" (Gaussian, on 0-255) or "poisson_scale" (the other one 0)."""
    seeds = tf.random.experimental.stateless_split(seed, 5)
    gray = tf.random.stateless_uniform([], seeds[0]) < stage.gray_noise_probability
    sigma = _uniform(seeds[1], *stage.noise_sigma)
    scale = _uniform(seeds[2], *stage.poisson_scale)
    gaussian = tf.random.stateless_uniform([], seeds[3]) < stage.gaussian_noise_probability
    noisy = tf.cond(
        gaussian,
        lambda: tf.cond(gray, lambda: gaussian_noise(image, sigma, seeds[4], gray=True),
                        lambda: gaussian_noise(image, sigma, seeds[4])),
        lambda: tf.cond(gray, lambda: poisson_noise(image, scale, seeds[4], gray=True),
                        lambda: poisson_noise(image, scale, seeds[4])))
    zero = tf.constant(0.0)
    return tf.clip_by_value(noisy, 0.0, 1.0), {
        "gaussian": gaussian, "gray": gray, "sigma": tf.where(gaussian, sigma, zero),
        "poisson_scale": tf.where(gaussian, zero, scale)}


def _jpeg_quality(seed, stage):
    """A float quality from U(low, high), as the reference draws it for DiffJPEG."""
    low, high = stage.jpeg_quality
    return tf.random.stateless_uniform([], seed, float(low), float(high))


def _random_jpeg(image, seed, stage):
    quality = _jpeg_quality(seed, stage)
    return jpeg(image, quality), quality


def _stage(image, seed, stage, size=None, planes=False):
    """Blur (with `stage.blur_probability`), resize, noise; the draws, and the JPEG's seed.
    With `planes`, `image` comes channels first (`[3, H, W]`, as the sharpening leaves it)
    and is blurred so before it turns channels last: two transposes fewer."""
    seeds = tf.random.experimental.stateless_split(seed, 5)
    blur = tf.random.stateless_uniform([], seeds[0]) < stage.blur_probability
    kernel, kernel_draws = random_kernel_and_draws(seeds[1], stage.kernel)
    if planes:
        image = tf.transpose(tf.cond(blur, lambda: filter_planes(image, kernel, True),
                                     lambda: image), [1, 2, 0])
    else:
        image = tf.cond(blur, lambda: filter_image(image, kernel), lambda: image)
    image, resize_draws = _random_resize(image, seeds[2], stage, size)
    image, noise_draws = _random_noise(image, seeds[3], stage)
    draws = {"blur": blur, **kernel_draws, **{f"resize_{key}": value
                                               for key, value in resize_draws.items()},
             **noise_draws}
    return image, seeds[4], draws


def degrade(hr_image, scale, seed, options=DegradationOptions(), return_draws=False,
            sharpen=False):
    """An LR image `scale` times smaller than `hr_image` ([H, W, 3] float in [0, 1], sides
    multiples of `scale`) through Real-ESRGAN's second-order degradation, as its training step
    applies it: blur, random resize, noise, JPEG; again with the second stage's values
    (resized so that the final resize is by the second stage's factor); then, in random order,
    the resize to the LR size followed by a sinc filter (with `final_sinc_probability`) and a
    last JPEG. Rounded to the 8-bit grid, as the reference does.

    With `return_draws`, also a flat dict of what was drawn (scalar or [2] tensors), keys
    "first_*", "second_*" (blur, the kernel's, resize_method / resize_size, noise's, jpeg) and
    "final_*" (sinc, sinc_size, cutoff, resize_first, resize_method, jpeg): what the
    degradation sheet prints and the draw-statistics tests count. The kernel keys are drawn
    whether or not the stage blurs ("blur" says whether it did).

    With `sharpen`, degrades `unsharp_mask(hr_image)`, as Real-ESRGAN's training step does
    (the same values; faster than sharpening first, as the sharpened image stays channels first
    for the first blur)."""
    seed = tf.convert_to_tensor(seed, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 8)
    lr_size = tf.shape(hr_image)[:2] // scale
    if sharpen:
        planes = unsharp_mask_planes(tf.transpose(hr_image, [2, 0, 1])[None], True)[0]
        image, jpeg_seed, first = _stage(planes, seeds[0], options.first, planes=True)
    else:
        image, jpeg_seed, first = _stage(hr_image, seeds[0], options.first)
    image, first["jpeg"] = _random_jpeg(image, jpeg_seed, options.first)
    # The second resize lands on lr_size / (a factor drawn like the stage's): the final resize
    # then brings it to the LR size.
    middle = _scaled_size(lr_size, _random_factor(seeds[2], seeds[1], options.second))
    image, jpeg_seed, second = _stage(image, seeds[3], options.second, size=middle)

    cutoff = math.pi / 3 + (math.pi - math.pi / 3) * tf.random.stateless_uniform([], seeds[4])
    size = tf.gather(tf.constant(options.first.kernel.sizes, tf.int32),
                     tf.random.stateless_uniform([], seeds[5], 0,
                                                 len(options.first.kernel.sizes), tf.int32))
    delta = tf.one_hot(KERNEL_GRID * KERNEL_GRID // 2, KERNEL_GRID * KERNEL_GRID)
    final_sinc = tf.random.stateless_uniform([], seeds[6]) < options.final_sinc_probability
    final_kernel = tf.where(final_sinc, sinc_kernel(size, cutoff),
                            tf.reshape(delta, [KERNEL_GRID, KERNEL_GRID]))

    def resize_then_sinc(image):
        resized, _ = _random_resize(image, seeds[7], options.second, size=lr_size)
        return filter_image(resized, final_kernel)

    def compress(image):
        return _random_jpeg(image, jpeg_seed, options.second)[0]

    resize_first = tf.random.stateless_uniform([], seeds[7] + [0, 1]) < 0.5
    image = tf.cond(resize_first, lambda: compress(resize_then_sinc(image)),
                    lambda: resize_then_sinc(compress(image)))
    lr_image = tf.clip_by_value(tf.round(image * 255.0), 0.0, 255.0) / 255.0
    if not return_draws:
        return lr_image
    # The same draws as the final resize and JPEG above make from the same seeds.
    final = {"sinc": final_sinc, "sinc_size": size,
             "cutoff": tf.where(final_sinc, cutoff, 0.0), "resize_first": resize_first,
             "resize_method": _resize_seeds_and_method(seeds[7])[1],
             "jpeg": _jpeg_quality(jpeg_seed, options.second)}
    draws = {}
    for prefix, values in (("first", first), ("second", second), ("final", final)):
        draws.update({f"{prefix}_{key}": value for key, value in values.items()})
    return lr_image, draws


def describe_draws(draws, hr_size, scale):
    """Three short lines naming what `degrade(hr, scale, seed, return_draws=True)` drew
    (tensors or numpy values; `hr_size` the HR [height, width]): each stage's blur kernel,
    resize factor and method, noise (sigma on 0-255, or Poisson scale) and the first JPEG
    quality, then the final step's resize, sinc filter and JPEG quality in their order."""
    value = {key: getattr(item, "numpy", lambda item=item: item)() for key, item in
             draws.items()}

    def stage(name, relative_to, label=""):
        if value[f"{name}_blur"]:
            kind = KERNEL_NAMES[int(value[f"{name}_kernel"])]
            blur = f"{kind} {int(value[f'{name}_size'])}px"
            if kind == "sinc":
                blur += f" wc {float(value[f'{name}_cutoff']):.2f}"
            else:
                sigma_x, sigma_y = value[f"{name}_sigma_x"], value[f"{name}_sigma_y"]
                blur += (f" s {sigma_x:.1f}" if "aniso" not in kind
                         else f" s {sigma_x:.1f}/{sigma_y:.1f} "
                              f"{math.degrees(value[f'{name}_theta']):.0f}deg")
                if value[f"{name}_beta"]:
                    blur += f" b {float(value[f'{name}_beta']):.1f}"
        else:
            blur = "no blur"
        factor = int(value[f"{name}_resize_size"][0]) / relative_to
        noise = (f"gauss {float(value[f'{name}_sigma']):.0f}" if value[f"{name}_gaussian"]
                 else f"poisson {float(value[f'{name}_poisson_scale']):.2f}")
        noise += " gray" if value[f"{name}_gray"] else ""
        method = RESIZE_METHODS[int(value[f"{name}_resize_method"])]
        line = f"{name}: {blur}, x{factor:.2f}{label} {method}, {noise}"
        if f"{name}_jpeg" in value:  # the second stage's JPEG is part of the final step
            line += f", jpeg q{int(value[name + '_jpeg'])}"
        return line

    first = stage("first", int(hr_size[0]))
    # The second stage resizes to a factor of the LR size (the final resize undoes it).
    second = stage("second", int(hr_size[0]) // scale, " of LR")
    sinc = (f"sinc {int(value['final_sinc_size'])}px wc {float(value['final_cutoff']):.2f}"
            if value["final_sinc"] else "no sinc")
    steps = [f"{RESIZE_METHODS[int(value['final_resize_method'])]} + {sinc}",
             f"jpeg q{int(value['final_jpeg'])}"]
    order = steps if value["final_resize_first"] else steps[::-1]
    return [first, second, "final: " + ", then ".join(order)]


def _gaussian_line(size, sigma):
    axis = tf.range(size, dtype=tf.float32) - (size - 1) / 2
    line = tf.exp(-tf.square(axis) / (2 * sigma * sigma))
    return line / tf.reduce_sum(line)


def _separable_spectrum(line, size, dtype):
    """`kernel_spectrum` of the square kernel line x line (`line` symmetric) at `size`, as the
    product of the line's 1-D transforms: two short FFTs instead of a 2-D one."""
    side = line.shape[0]
    line = tf.cast(line, dtype)
    complex_dtype = tf.complex128 if dtype == tf.float64 else tf.complex64
    down = tf.signal.fft(tf.cast(tf.pad(line, [[0, size[0] - side]]), complex_dtype))
    across = tf.signal.rfft(tf.pad(line, [[0, size[1] - side]]), size[1:])
    return down[:, None] * across[None, :]


# Real-ESRGAN's USMSharp: radius 50 (made odd: 51), sigma as OpenCV derives it for that size,
# weight 0.5, threshold 10 on 0-255.
USM_SIZE = 51
USM_SIGMA = 0.3 * ((USM_SIZE - 1) * 0.5 - 1) + 0.8
USM_WEIGHT = 0.5
USM_THRESHOLD = 10


def unsharp_mask(images):
    """Real-ESRGAN's sharpening of the ground truth (`USMSharp`): add half the high-pass
    residual where it exceeds 10/255, through a soft mask, clipped to [0, 1]. `[B, H, W, 3]`
    float in [0, 1], sides above 25 pixels."""
    images = tf.convert_to_tensor(images)
    dtype = images.dtype
    # The FFT wants float32 or float64; channels first, as it transforms the last two axes.
    planes = tf.cast(images, tf.float64 if dtype == tf.float64 else tf.float32)
    sharpened = unsharp_mask_planes(tf.transpose(planes, [0, 3, 1, 2]))
    return tf.cast(tf.transpose(sharpened, [0, 2, 3, 1]), dtype)


def unsharp_mask_planes(planes, separately=False):
    """`unsharp_mask` of images channels first (`[B, C, H, W]`, float32 or float64); each
    plane alone when `separately` (see `_plane_by_plane`)."""
    half = USM_SIZE // 2
    line = _gaussian_line(USM_SIZE, USM_SIGMA)
    kernel = line[:, None] * line[None, :]

    def padded(planes):
        return reflect_pad(planes, half, [2, 3])

    # The image and the mask are blurred at one size: one kernel spectrum serves both.
    spectrum = _separable_spectrum(line, tf.shape(planes)[-2:] + 2 * half, planes.dtype)

    def sharpen(planes):
        residual = planes - correlate_padded(padded(planes), kernel, spectrum)
        mask = tf.cast(tf.abs(residual) * 255.0 > USM_THRESHOLD, planes.dtype)
        soft_mask = correlate_padded(padded(mask), kernel, spectrum)
        sharp = tf.clip_by_value(planes + USM_WEIGHT * residual, 0.0, 1.0)
        return soft_mask * sharp + (1.0 - soft_mask) * planes

    return _plane_by_plane(planes, sharpen, separately)
