"""The settings of Real-ESRGAN's degradation model (`keras_sr.data.real_degradations`), with
the x4plus recipe's values as defaults, and their checks. Plain dataclasses without TensorFlow:
`training.config` holds them as its `degradation` section (`--set
degradation.second.noise_sigma=[1,20]`)."""

import dataclasses

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                "plateau_aniso")


@dataclasses.dataclass(frozen=True)
class KernelOptions:
    """How one stage draws its blur kernel; the defaults are the Real-ESRGAN x4plus recipe's
    first stage.

    Attributes:
        sizes: odd kernel sizes to draw from uniformly.
        type_probabilities: probabilities of `KERNEL_TYPES`, in that order.
        sigma: range of the Gaussian widths (both axes, drawn independently when anisotropic).
        generalized_beta: range of the generalized Gaussian's shape parameter.
        plateau_beta: range of the plateau kernel's shape parameter.
        sinc_probability: probability of a 2-D sinc (circular low-pass) kernel instead.
    """

    sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    type_probabilities: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sigma: tuple[float, ...] = (0.2, 3.0)
    generalized_beta: tuple[float, ...] = (0.5, 4.0)
    plateau_beta: tuple[float, ...] = (1.0, 2.0)
    sinc_probability: float = 0.1


@dataclasses.dataclass(frozen=True)
class StageOptions:
    """One stage of the second-order model; the defaults are the x4plus recipe's first stage.

    Attributes:
        blur_probability: probability of blurring at all.
        kernel: how the blur kernel is drawn.
        resize_probabilities: up / down / keep.
        resize_range: factor range (up draws from [1, high], down from [low, 1]).
        gaussian_noise_probability: Gaussian, else Poisson.
        noise_sigma: Gaussian sigma range, on 0-255.
        poisson_scale: Poisson scale range.
        gray_noise_probability: noise the same on every channel.
        jpeg_quality: JPEG quality range.
    """

    blur_probability: float = 1.0
    kernel: KernelOptions = KernelOptions()
    resize_probabilities: tuple[float, ...] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, ...] = (0.15, 1.5)
    gaussian_noise_probability: float = 0.5
    noise_sigma: tuple[float, ...] = (1.0, 30.0)
    poisson_scale: tuple[float, ...] = (0.05, 3.0)
    gray_noise_probability: float = 0.4
    jpeg_quality: tuple[int, ...] = (30, 95)


SECOND_STAGE = StageOptions(
    blur_probability=0.8, kernel=KernelOptions(sigma=(0.2, 1.5)),
    resize_probabilities=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2), noise_sigma=(1.0, 25.0),
    poisson_scale=(0.05, 2.5))


@dataclasses.dataclass(frozen=True)
class DegradationOptions:
    """Real-ESRGAN's second-order degradation (x4plus recipe values by default).

    Attributes:
        first, second: the two stages.
        final_sinc_probability: probability of the final sinc filter (cutoff in [pi/3, pi]).
        crop_pad_size: the training pipeline crops (or reflect-pads) each HR image to this
            square, degrades all of it, then cuts the training patch from both: Real-ESRGAN's
            dataset uses 400 for 256-pixel patches, so the LR patch carries no border effects
            of the blur and the JPEG grid falls anywhere in it. At least the HR patch size.
    """

    first: StageOptions = StageOptions()
    second: StageOptions = SECOND_STAGE
    final_sinc_probability: float = 0.8
    crop_pad_size: int = 400


def crop_pad_problem(crop_pad_size, hr_patch_size, scale):
    """What is wrong with `crop_pad_size` for these patches, or None: the pipeline cuts the
    patch from the crop, and the sharpening's 51-tap blur reflects 25 pixels of it."""
    if crop_pad_size < max(hr_patch_size, 26) or crop_pad_size % scale:
        return (f"must be a multiple of the scale {scale}, at least the HR patch size "
                f"{hr_patch_size} and above 25, got {crop_pad_size}")
    return None


def _range(values, key, low=None, high=None):
    if len(values) != 2 or values[0] > values[1]:
        return [(key, f"must be [low, high] with low <= high, got {list(values)}")]
    if (low is not None and values[0] < low) or (high is not None and values[1] > high):
        return [(key, f"must lie in [{low}, {high}], got {list(values)}")]
    return []


def _probability(value, key):
    return [] if 0.0 <= value <= 1.0 else [(key, f"must be a probability in [0, 1], got "
                                                 f"{value}")]


def _distribution(values, count, key):
    if len(values) != count or any(value < 0 for value in values) \
            or abs(sum(values) - 1.0) > 1e-6:
        return [(key, f"must be {count} probabilities summing to 1, got {list(values)}")]
    return []


def problems(options, prefix="degradation"):
    """`[(dotted key, what is wrong)]` for a `DegradationOptions`; empty when usable."""
    found = _probability(options.final_sinc_probability, f"{prefix}.final_sinc_probability")
    if not isinstance(options.crop_pad_size, int) or options.crop_pad_size < 1:
        found.append((f"{prefix}.crop_pad_size",
                      f"must be a positive whole number, got {options.crop_pad_size!r}"))
    for name in ("first", "second"):
        stage, key = getattr(options, name), f"{prefix}.{name}"
        kernel = stage.kernel
        if not kernel.sizes or any(size % 2 == 0 or not 3 <= size <= 21
                                   for size in kernel.sizes):
            found.append((f"{key}.kernel.sizes",
                           f"must be odd sizes from 3 to 21, got {list(kernel.sizes)}"))
        found += _distribution(kernel.type_probabilities, len(KERNEL_TYPES),
                               f"{key}.kernel.type_probabilities")
        found += _range(kernel.sigma, f"{key}.kernel.sigma", 1e-3)
        found += _range(kernel.generalized_beta, f"{key}.kernel.generalized_beta", 1e-3)
        found += _range(kernel.plateau_beta, f"{key}.kernel.plateau_beta", 1e-3)
        found += _probability(kernel.sinc_probability, f"{key}.kernel.sinc_probability")
        found += _probability(stage.blur_probability, f"{key}.blur_probability")
        found += _distribution(stage.resize_probabilities, 3, f"{key}.resize_probabilities")
        found += _range(stage.resize_range, f"{key}.resize_range", 1e-3)
        if not found and not stage.resize_range[0] <= 1.0 <= stage.resize_range[1]:
            found.append((f"{key}.resize_range", "must contain 1 (down draws from [low, 1], "
                          f"up from [1, high]), got {list(stage.resize_range)}"))
        found += _probability(stage.gaussian_noise_probability,
                              f"{key}.gaussian_noise_probability")
        found += _range(stage.noise_sigma, f"{key}.noise_sigma", 0.0)
        found += _range(stage.poisson_scale, f"{key}.poisson_scale", 0.0)
        found += _probability(stage.gray_noise_probability, f"{key}.gray_noise_probability")
        found += _range(stage.jpeg_quality, f"{key}.jpeg_quality", 1, 100)
    return found
