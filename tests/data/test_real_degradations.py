"""Real-ESRGAN's degradation pieces checked against their definitions."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_sr.data import real_degradations as rd

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

GRID = np.arange(-10, 11, dtype=np.float64)
XX, YY = np.meshgrid(GRID, GRID)


def second_moments(kernel):
    kernel = np.asarray(kernel, np.float64)
    return np.array([[np.sum(kernel * XX * XX), np.sum(kernel * XX * YY)],
                     [np.sum(kernel * XX * YY), np.sum(kernel * YY * YY)]])


@pytest.mark.parametrize("size", [7, 13, 21])
def test_every_kernel_sums_to_one_inside_its_window(size):
    for kernel in (rd.gaussian_kernel(size, 1.5, 0.7, 0.4),
                   rd.generalized_gaussian_kernel(size, 1.5, 0.7, 0.4, 2.5),
                   rd.plateau_kernel(size, 1.5, 0.7, 0.4, 1.5), rd.sinc_kernel(size, 1.2)):
        kernel = kernel.numpy()
        assert kernel.shape == (21, 21) and kernel.sum() == pytest.approx(1.0, abs=1e-5)
        outside = np.abs(XX) > size // 2
        assert np.all(kernel[outside | (np.abs(YY) > size // 2)] == 0)


def test_isotropic_kernels_are_symmetric():
    for kernel in (rd.gaussian_kernel(21, 2.0, 2.0, 0.0),
                   rd.plateau_kernel(15, 1.3, 1.3, 0.0, 1.5), rd.sinc_kernel(21, 2.0)):
        kernel = kernel.numpy()
        np.testing.assert_allclose(kernel, kernel.T, atol=1e-7)
        np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-7)


def test_the_anisotropic_gaussian_has_the_requested_covariance_after_rotation():
    sigma_x, sigma_y, theta = 2.5, 1.0, 0.6
    rotation = np.array([[math.cos(theta), -math.sin(theta)],
                         [math.sin(theta), math.cos(theta)]])
    expected = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
    measured = second_moments(rd.gaussian_kernel(21, sigma_x, sigma_y, theta))
    np.testing.assert_allclose(measured, expected, atol=0.02 * sigma_x**2)


def test_generalized_and_plateau_shapes_at_known_beta():
    # beta = 1 makes the generalized Gaussian a Gaussian.
    np.testing.assert_allclose(rd.generalized_gaussian_kernel(21, 1.7, 1.2, 0.3, 1.0),
                               rd.gaussian_kernel(21, 1.7, 1.2, 0.3), atol=1e-7)
    # Plateau: k(x) / k(0) = 1 / (1 + q^beta); at x = (sigma, 0) rotated, q = 1 -> one half.
    kernel = rd.plateau_kernel(21, 2.0, 2.0, 0.0, 1.7).numpy()
    assert kernel[10, 12] / kernel[10, 10] == pytest.approx(0.5, rel=1e-5)
    # ... and at q = 4 (x = 2 sigma), 1 / (1 + 4^beta).
    assert kernel[10, 14] / kernel[10, 10] == pytest.approx(1 / (1 + 4**1.7), rel=1e-5)
    generalized = rd.generalized_gaussian_kernel(21, 2.0, 2.0, 0.0, 2.5).numpy()
    assert generalized[10, 14] / generalized[10, 10] == pytest.approx(math.exp(-0.5 * 4**2.5),
                                                                      rel=1e-4)


def test_the_sinc_kernel_cuts_where_asked():
    cutoff = math.pi / 3
    kernel = rd.sinc_kernel(21, cutoff).numpy()
    response = np.abs(np.fft.fft2(kernel, s=(256, 256)))
    frequency = 2 * math.pi * np.fft.fftfreq(256)
    radius = np.sqrt(frequency[:, None] ** 2 + frequency[None, :] ** 2)
    passband = response[radius < 0.6 * cutoff]
    stopband = response[(radius > 1.4 * cutoff) & (radius < math.pi)]
    assert passband.min() > 0.85 and passband.max() < 1.15
    assert stopband.max() < 0.15


def test_random_kernels_follow_their_seed_and_the_recipe():
    first = [rd.random_kernel([7, index]).numpy() for index in range(40)]
    again = [rd.random_kernel([7, index]).numpy() for index in range(40)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert len({a.tobytes() for a in first}) == 40
    for kernel in first:
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5) and np.isfinite(kernel).all()
    # Sinc only, when asked: some taps negative (a Gaussian-family kernel never is).
    always_sinc = rd.KernelOptions(sinc_probability=1.0)
    assert (rd.random_kernel([1, 2], always_sinc).numpy() < 0).any()
    assert all((kernel >= 0).all() for kernel in (
        rd.random_kernel([1, index], rd.KernelOptions(sinc_probability=0.0)).numpy()
        for index in range(20)))


def flat_image(value=0.5, size=64):
    return tf.fill([size, size, 3], value)


def test_gaussian_noise_has_the_requested_deviation_and_gray_noise_is_shared():
    noisy = rd.gaussian_noise(flat_image(), 20.0, [3, 4]).numpy() - 0.5
    assert noisy.std() * 255 == pytest.approx(20.0, rel=0.05)
    assert not np.allclose(noisy[..., 0], noisy[..., 1])
    gray = rd.gaussian_noise(flat_image(), 20.0, [3, 4], gray=True).numpy() - 0.5
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


@pytest.mark.parametrize("shape", [[401, 399], [7, 5, 3]])
def test_standard_normal_values_follow_the_normal_distribution(shape):
    values = rd.standard_normal(tf.constant(shape), [5, 6]).numpy()
    assert values.shape == tuple(shape)
    if values.size < 1000:
        return
    # The empirical CDF at a few points against the normal's, to a few standard errors.
    for point in (-3.0, -2.0, -1.0, -0.3, 0.0, 0.5, 1.5, 2.5):
        expected = 0.5 * (1.0 + math.erf(point / math.sqrt(2.0)))
        assert np.mean(values < point) == pytest.approx(expected, abs=0.004)
    assert values.std() == pytest.approx(1.0, abs=0.005)
    assert np.abs(values).max() <= 5.65  # the radius' bound: u on [0, 1) in float32
    # The seed decides the values.
    np.testing.assert_array_equal(values, rd.standard_normal(tf.constant(shape), [5, 6]))
    assert not np.allclose(values, rd.standard_normal(tf.constant(shape), [5, 7]))


def test_poisson_noise_variance_scales_as_specified():
    # Two grey levels: n = 2 distinct values -> counts ~ Poisson(x * 2) / 2, so the noise on a
    # pixel of value x has variance scale^2 * x / 2.
    image = tf.concat([tf.fill([128, 64, 3], 0.2), tf.fill([128, 64, 3], 0.6)], axis=1)
    for scale in (0.5, 2.0):
        noise = rd.poisson_noise(image, scale, [5, 6]).numpy() - image.numpy()
        for column, value in ((slice(0, 64), 0.2), (slice(64, 128), 0.6)):
            assert noise[:, column].var() == pytest.approx(scale**2 * value / 2, rel=0.1)
    gray = rd.poisson_noise(image, 1.0, [5, 6], gray=True).numpy() - image.numpy()
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    assert gray.std() > 0


@pytest.mark.parametrize("levels", [2.0, 16.0, 256.0])
def test_poisson_counts_invert_each_rates_distribution_exactly(levels):
    """Every count is the smallest whose Poisson CDF reaches the pixel's uniform draw (the
    same stateless draw, recomputed here): exact inverse-transform sampling, at every level of
    the grid, including the few draws whose count lies past the window around the guess
    (about 1 in 10^5 here) that the sampler then searches for."""
    grid = np.tile(np.arange(256, dtype=np.float32), 3000).reshape(1000, 768)
    seed = [11, int(levels)]
    counts = rd.poisson_on_grid(tf.constant(grid), levels, seed).numpy()
    uniform = tf.random.stateless_uniform(grid.shape, seed, dtype=tf.float64).numpy()
    rates = np.arange(256) / 255.0 * levels
    pmf = np.empty((256, 600))
    pmf[:, 0] = np.exp(-rates)
    for count in range(1, 600):
        pmf[:, count] = pmf[:, count - 1] * rates / count
    cdf = np.cumsum(pmf, axis=1)
    rows = grid.astype(int)
    expected = np.empty_like(counts)
    for value in range(256):
        at = rows == value
        expected[at] = np.searchsorted(cdf[value], uniform[at], side="left")
    np.testing.assert_array_equal(counts, expected)
    assert counts.max() > rates.max()  # the upper tail is reached


def test_the_full_levels_table_made_inside_a_dataset_draws_as_eager_code_does():
    """The 256-level CDF table is built once, eagerly, even when the first Poisson draw of
    the process is traced by tf.data; the counts then equal an eager draw's."""
    rd._full_levels_table.cache_clear()
    grid = tf.constant(np.tile(np.arange(256, dtype=np.float32), 64).reshape(128, 128))
    dataset = tf.data.Dataset.from_tensors(grid).map(
        lambda image: rd.poisson_on_grid(image, 256.0, [3, 4]))
    traced = next(iter(dataset)).numpy()
    assert rd._full_levels_table.cache_info().currsize == 1
    np.testing.assert_array_equal(traced, rd.poisson_on_grid(grid, 256.0, [3, 4]).numpy())
    assert traced.std() > 0


def test_jpeg_changes_the_image_more_at_lower_quality(rng):
    image = tf.constant(rng.random((64, 64, 3)), tf.float32)
    errors = [float(tf.reduce_mean(tf.abs(rd.jpeg(image, quality) - image)))
              for quality in (95, 60, 30)]
    assert errors[0] > 0 and errors[0] < errors[1] < errors[2]


@pytest.mark.parametrize("method", rd.RESIZE_METHODS)
@pytest.mark.parametrize("factor", [0.15, 0.5, 1.0, 1.37, 1.5])
def test_resizing_lands_on_the_floored_size(method, factor):
    image = flat_image(size=37)
    resized = rd.resize_by(image, factor, method)
    expected = max(int(math.floor(37 * factor)), 1)
    assert resized.shape == (expected, expected, 3)


def test_filtering_with_a_delta_kernel_keeps_the_image(rng):
    image = tf.constant(rng.random((30, 24, 3)), tf.float32)
    delta = np.zeros((21, 21), np.float32)
    delta[10, 10] = 1.0
    np.testing.assert_allclose(rd.filter_image(image, tf.constant(delta)), image, atol=1e-6)
    blurred = rd.filter_image(image, rd.gaussian_kernel(21, 2.0, 2.0, 0.0))
    assert float(tf.math.reduce_std(blurred)) < float(tf.math.reduce_std(image))
    # An image smaller than the padding (deep downscales of small patches) is filtered too.
    tiny = tf.constant(rng.random((6, 5, 3)), tf.float32)
    np.testing.assert_allclose(rd.filter_image(tiny, tf.constant(delta)), tiny, atol=1e-6)
    assert rd.filter_image(tiny, rd.gaussian_kernel(21, 2.0, 2.0, 0.0)).shape == (6, 5, 3)


@pytest.mark.parametrize("shape, half, axes", [((30, 24, 3), 10, [0, 1]),
                                               ((2, 3, 26, 40), 25, [2, 3]),
                                               ((11, 5), 4, [1])])
def test_reflect_pad_mirrors_about_the_edge_sample_as_numpy_does(rng, shape, half, axes):
    array = rng.random(shape).astype(np.float32)
    widths = [(half, half) if axis in axes else (0, 0) for axis in range(len(shape))]
    expected = np.pad(array, widths, mode="reflect")
    np.testing.assert_array_equal(rd.reflect_pad(tf.constant(array), half, axes), expected)
    # Traced with unknown sides, as tf.data traces it.
    traced = tf.function(lambda x: rd.reflect_pad(x, half, axes),
                         input_signature=[tf.TensorSpec([None] * len(shape), tf.float32)])
    np.testing.assert_array_equal(traced(tf.constant(array)), expected)


def test_reflect_pad_refuses_a_side_no_longer_than_the_pad():
    with pytest.raises(tf.errors.InvalidArgumentError, match="not longer than 10"):
        rd.reflect_pad(tf.zeros([10, 40, 3]), 10, [0, 1])
    traced = tf.function(lambda x: rd.reflect_pad(x, 10, [0, 1]),
                         input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not longer than 10"):
        traced(tf.zeros([40, 9, 3]))


def test_the_pieces_run_in_graph_mode():
    @tf.function
    def degrade(image, seed):
        kernel = rd.random_kernel(seed)
        image = rd.filter_image(image, kernel)
        image = rd.gaussian_noise(image, 10.0, seed)
        return rd.jpeg(image, 70)

    out = degrade(flat_image(size=32), tf.constant([1, 2]))
    assert out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out, degrade(flat_image(size=32), tf.constant([1, 2])))


def test_degrade_makes_a_seeded_lr_image_of_the_right_size(rng):
    hr = tf.constant(rng.random((64, 48, 3)), tf.float32)
    lr = rd.degrade(hr, 4, [3, 9])
    assert lr.shape == (16, 12, 3)
    values = lr.numpy() * 255
    np.testing.assert_allclose(values, np.round(values), atol=1e-3)  # the 8-bit grid
    assert 0 <= values.min() and values.max() <= 255
    np.testing.assert_array_equal(lr, rd.degrade(hr, 4, [3, 9]))
    others = [rd.degrade(hr, 4, [3, seed]).numpy() for seed in range(10, 16)]
    assert len({other.tobytes() for other in others}) == 6


def test_training_batches_with_the_real_degradation(tmp_path, rng):
    from PIL import Image

    from keras_sr.data.pipeline import training_dataset
    from keras_sr.data.sources import folder_source
    from tests.training.test_evaluate import natural_like

    # One image smaller than the HR patch: padded to the crop size, not skipped.
    for index, (height, width) in enumerate([(80, 72), (96, 64), (20, 28)]):
        Image.fromarray(natural_like(rng, height, width)).save(tmp_path / f"{index}.png")
    source = folder_source(tmp_path, scale=4)
    assert source.count == 3

    def dataset(seed):
        return training_dataset(source, 32, 4, 3, seed=seed, cache=False,
                                degradation=rd.DegradationOptions(crop_pad_size=48)).take(2)

    def batches(dataset):
        return [(lr.numpy(), hr.numpy()) for lr, hr in dataset]

    first = dataset(1)
    real, again, other = batches(first), batches(first), batches(dataset(2))
    for (real_lr, real_hr), (again_lr, again_hr), (other_lr, _) in zip(real, again, other):
        assert real_lr.shape == (3, 8, 8, 3) and real_hr.shape == (3, 32, 32, 3)
        np.testing.assert_array_equal(real_lr, again_lr)
        np.testing.assert_array_equal(real_hr, again_hr)
        assert not np.array_equal(real_lr, other_lr)
        # The LR is on the 8-bit grid, as the reference rounds it.
        np.testing.assert_allclose(real_lr * 255, np.round(real_lr * 255), atol=1e-4)


def test_the_pair_is_cut_from_the_degraded_sharpened_crop(rng):
    """Real-ESRGAN's feed_data degrades USM(GT) of the whole 400 crop, then cuts the paired
    patch: the HR patch is the unsharpened crop's, the LR patch the matching window of the LR
    of the sharpened crop (27-31 dB away from degrading the plain crop)."""
    from keras_sr.data.pipeline import degraded_pair
    from keras_sr.data.transforms import crop_or_pad
    from tests.training.test_evaluate import natural_like

    image = natural_like(rng, 90, 70)
    options = rd.DegradationOptions(crop_pad_size=64)
    for number in range(3):
        seed = tf.constant(1000 + number, tf.int64)
        lr, hr = degraded_pair(image, 32, 4, seed, options, flip=False, rotate=False)
        crop = tf.image.convert_image_dtype(crop_or_pad(image, 64, seed), tf.float32).numpy()
        matches = [(top, left) for top in range(0, 33, 4) for left in range(0, 33, 4)
                   if np.array_equal(crop[top:top + 32, left:left + 32], hr)]
        assert len(matches) == 1
        top, left = matches[0][0] // 4, matches[0][1] // 4
        degrade_seed = tf.bitcast(seed, tf.int32)
        sharpened = rd.degrade(rd.unsharp_mask(crop[None])[0], 4, degrade_seed, options)
        plain = rd.degrade(crop, 4, degrade_seed, options)
        np.testing.assert_array_equal(lr, sharpened[top:top + 8, left:left + 8])
        assert not np.array_equal(lr, plain[top:top + 8, left:left + 8])


def test_small_images_are_reflect_padded_at_the_bottom_and_right_as_opencv_pads(rng):
    from keras_sr.data.transforms import crop_or_pad, pad_to_at_least

    image = rng.integers(0, 256, (5, 3, 3), dtype=np.uint8)
    # numpy's "reflect" is OpenCV's BORDER_REFLECT_101, reflecting again past the far edge.
    np.testing.assert_array_equal(pad_to_at_least(tf.constant(image), 17),
                                  np.pad(image, [(0, 12), (0, 14), (0, 0)], mode="reflect"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="side of 1 pixel"):
        pad_to_at_least(tf.zeros([1, 5, 3]), 8)
    # Padded in height only, then cropped in width at a seeded offset.
    wide = rng.integers(0, 256, (6, 40, 3), dtype=np.uint8)
    padded = np.pad(wide, [(0, 10), (0, 0), (0, 0)], mode="reflect")
    crops = [crop_or_pad(tf.constant(wide), 16, tf.constant(seed, tf.int64)).numpy()
             for seed in range(4)]
    offsets = {left for crop in crops for left in range(25)
               if np.array_equal(padded[:, left:left + 16], crop)}
    assert len(offsets) > 1


def test_unsharp_masking_sharpens_edges_and_leaves_flat_and_faint_detail_alone():
    flat = tf.fill([1, 64, 64, 3], 0.4)
    np.testing.assert_allclose(rd.unsharp_mask(flat), flat, atol=1e-6)
    # A faint ramp: every residual under the 10/255 threshold, so nothing changes.
    ramp = tf.tile(tf.linspace(0.3, 0.32, 64)[None, None, :, None], [1, 64, 1, 3])
    np.testing.assert_allclose(rd.unsharp_mask(ramp), ramp, atol=1e-6)
    # A step: the dark side gets darker and the bright side brighter next to the edge.
    step = tf.concat([tf.fill([1, 64, 32, 3], 0.3), tf.fill([1, 64, 32, 3], 0.7)], axis=2)
    sharp = rd.unsharp_mask(step).numpy()
    assert sharp[0, 32, 30, 0] < 0.3 - 0.02 and sharp[0, 32, 33, 0] > 0.7 + 0.02
    assert 0.0 <= sharp.min() and sharp.max() <= 1.0
    assert rd.USM_SIGMA == pytest.approx(8.0)  # OpenCV's sigma for a 51-tap kernel


FORCED = rd.DegradationOptions(
    first=rd.StageOptions(
        kernel=rd.KernelOptions(type_probabilities=(0, 1, 0, 0, 0, 0), sinc_probability=0.0),
        resize_probabilities=(0, 1, 0), resize_range=(0.5, 1.5),
        gaussian_noise_probability=1.0, gray_noise_probability=0.0, jpeg_quality=(40, 50)),
    second=rd.StageOptions(blur_probability=0.0, gaussian_noise_probability=0.0,
                           gray_noise_probability=1.0, poisson_scale=(1.0, 2.0)),
    final_sinc_probability=0.0)


@pytest.mark.parametrize("first_blur", [1.0, 0.0])
def test_degrading_with_sharpen_equals_degrading_the_sharpened_image(rng, first_blur):
    """`sharpen=True` keeps the sharpened crop channels first into the first blur (or past
    it when the stage does not blur): the same LR and draws as sharpening first."""
    options = rd.DegradationOptions(first=dataclasses.replace(rd.DegradationOptions().first,
                                                  blur_probability=first_blur))
    hr = tf.constant(rng.random((48, 40, 3)), tf.float32)
    for seed in ([3, 1], [3, 2]):
        lr, draws = rd.degrade(hr, 4, seed, options, return_draws=True, sharpen=True)
        expected, expected_draws = rd.degrade(rd.unsharp_mask(hr[None])[0], 4, seed, options,
                                              return_draws=True)
        assert bool(draws["first_blur"]) == bool(first_blur)
        np.testing.assert_allclose(lr, expected, atol=1e-6)
        for key, value in expected_draws.items():
            np.testing.assert_array_equal(draws[key], value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_degrade_reports_what_it_drew(rng, seed):
    hr = tf.constant(rng.random((64, 64, 3)), tf.float32)
    lr, draws = rd.degrade(hr, 4, [5, seed], FORCED, return_draws=True)
    np.testing.assert_array_equal(lr, rd.degrade(hr, 4, [5, seed], FORCED))
    draws = {key: value.numpy() for key, value in draws.items()}
    assert draws["first_blur"] and rd.KERNEL_NAMES[draws["first_kernel"]] == "aniso"
    assert 0.2 <= draws["first_sigma_x"] <= 3 and 0.2 <= draws["first_sigma_y"] <= 3
    assert -math.pi <= draws["first_theta"] <= math.pi and draws["first_beta"] == 0
    assert draws["first_cutoff"] == 0 and draws["first_size"] in range(7, 22, 2)
    assert 32 <= draws["first_resize_size"][0] <= 64  # down by a factor in [0.5, 1]
    assert draws["first_gaussian"] and not draws["first_gray"]
    assert 1 <= draws["first_sigma"] <= 30 and draws["first_poisson_scale"] == 0
    assert 40 <= draws["first_jpeg"] <= 50
    assert not draws["second_blur"] and not draws["second_gaussian"] and draws["second_gray"]
    assert 1 <= draws["second_poisson_scale"] <= 2 and draws["second_sigma"] == 0
    assert not draws["final_sinc"] and draws["final_cutoff"] == 0
    assert 30 <= draws["final_jpeg"] <= 95
    lines = rd.describe_draws(draws, (64, 64), 4)
    assert lines[0].startswith("first: aniso ") and "gauss" in lines[0] and "q4" in lines[0]
    assert lines[1].startswith("second: no blur") and "poisson" in lines[1] \
        and lines[1].endswith(" gray")
    assert lines[2].startswith("final: ") and "no sinc" in lines[2]


def test_reported_kernels_follow_the_recipes_probabilities():
    draw = tf.function(lambda seed: rd.random_kernel_and_draws(seed)[1]["kernel"])
    kinds = np.array([draw(tf.constant([11, index])).numpy() for index in range(600)])
    expected = np.array(rd.KernelOptions().type_probabilities + (0,)) * 0.9 + np.eye(7)[6] * 0.1
    observed = np.bincount(kinds, minlength=7) / len(kinds)
    # Four binomial standard deviations at n = 600 (at most 0.08).
    tolerance = 4 * np.sqrt(expected * (1 - expected) / 600) + 1e-9
    assert (np.abs(observed - expected) <= tolerance).all(), (observed, expected)


def test_every_training_pair_is_degraded_with_its_own_draws():
    """The reference (BasicSR's RealESRGANModel) draws the resize, the noise type and the final
    order once per batch, hence its training-pair pool; here each pair is degraded alone from
    its stream position's seed, so a batch mixes degradations by itself."""
    from keras_sr.data.pipeline import element_seed

    degrade = tf.function(lambda seed: rd.degrade(tf.fill([64, 64, 3], 0.5), 4, seed,
                                                  return_draws=True)[1])
    directions = {int(degrade(tf.bitcast(element_seed(3, index), tf.int32))
                      ["first_resize_size"][0]) for index in range(4)}
    assert len(directions) > 1


@pytest.mark.parametrize("beta_range,ones,mean", [((1.0, 2.0), 0.5, 1.25),
                                                  ((0.5, 4.0), 0.0, 1.625)])
def test_beta_is_drawn_below_or_above_one_with_equal_chance_as_basicsr_draws_it(
        beta_range, ones, mean):
    # random_bivariate_plateau / _generalized_Gaussian: U(low, 1) or U(1, high), each half the
    # time, also for the plateau's [1, 2], where the first half is beta = 1 exactly.
    draws = np.array([float(rd._beta(tf.constant([7, index], tf.int32), beta_range))
                      for index in range(2000)])
    # Binomial(2000, 1/2): 4 sigma is 0.045 of the share; the mean's sigma is under 0.02.
    assert abs(np.mean(draws == 1.0) - ones) < 0.045
    assert abs(draws.mean() - mean) < 0.08
    assert draws.min() >= beta_range[0] and draws.max() <= beta_range[1]


def test_every_draw_follows_the_x4plus_recipe():
    """Over 600 degradations: each choice's frequency within four binomial standard
    deviations of train_realesrgan_x4plus.yml's, each range inside the yml's."""
    options = rd.DegradationOptions()
    # 256 pixels: a factor within 1/64 of 1 would floor to "keep" on the 64-pixel LR; at
    # most 3% of the draws.
    draw = tf.function(lambda seed: rd.degrade(tf.fill([256, 256, 3], 0.5), 4, seed,
                                               return_draws=True)[1])
    draws = [{key: value.numpy() for key, value in draw(tf.constant([13, index])).items()}
             for index in range(600)]

    def share(test):
        return np.mean([bool(test(item)) for item in draws])

    def near(observed, expected):
        return abs(observed - expected) <= 4 * np.sqrt(expected * (1 - expected) / 600) + 1e-9

    for stage, side in (("first", 256), ("second", 64)):
        settings = getattr(options, stage)
        ratio = np.array([item[f"{stage}_resize_size"][0] / side for item in draws])
        # up / down / keep (a factor drawn in [1, high] or [low, 1], or exactly 1)
        low, high = settings.resize_range
        assert ratio.min() >= np.floor(side * low) / side - 1e-6
        assert ratio.max() <= high + 1e-6
        keep = np.mean(ratio == 1.0)
        assert near(keep, settings.resize_probabilities[2]), (stage, keep)
        for method in range(3):
            assert near(share(lambda item: item[f"{stage}_resize_method"] == method), 1 / 3)
        assert near(share(lambda item: item[f"{stage}_gaussian"]),
                    settings.gaussian_noise_probability)
        assert near(share(lambda item: item[f"{stage}_gray"]), settings.gray_noise_probability)
        assert near(share(lambda item: item[f"{stage}_blur"]), settings.blur_probability)
        sigmas = [item[f"{stage}_sigma"] for item in draws if item[f"{stage}_gaussian"]]
        assert settings.noise_sigma[0] <= min(sigmas) and max(sigmas) <= settings.noise_sigma[1]
        scales = [item[f"{stage}_poisson_scale"] for item in draws
                  if not item[f"{stage}_gaussian"]]
        assert (settings.poisson_scale[0] <= min(scales)
                and max(scales) <= settings.poisson_scale[1])
    for key, settings in (("first_jpeg", options.first), ("final_jpeg", options.second)):
        qualities = np.array([item[key] for item in draws])
        low, high = settings.jpeg_quality
        assert low <= qualities.min() and qualities.max() <= high
        # A float quality, uniform: the reference's uniform_(30, 95) for DiffJPEG.
        assert len(np.unique(qualities)) > 500
        assert abs(np.median(qualities) - (low + high) / 2) < 0.1 * (high - low)
    assert near(share(lambda item: item["final_resize_first"]), 0.5)
    assert near(share(lambda item: item["final_sinc"]), options.final_sinc_probability)
