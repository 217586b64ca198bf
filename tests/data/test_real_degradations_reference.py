"""Real-ESRGAN's degradation pieces against the PyTorch reference written from reading
Real-ESRGAN / BasicSR (`benchmarks/torch_reference.py`): on the same draws, kernels, filtering,
each resize, sharpening and JPEG (DiffJPEG) agree to float32 rounding; the random noises, whose
generators differ, agree in strength (standard deviation within 3% on a photo at three sizes)."""

import numpy as np
import pytest

from benchmarks import torch_reference as reference
from keras_sr.data import real_degradations as rd
from keras_sr.data.images import read_image

pytestmark = pytest.mark.numerics

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install "
                                            "keras-sr[torch]); CI installs it")
pytest.importorskip("scipy", reason="the reference sinc needs scipy's J1; CI installs it")


@pytest.fixture(scope="module")
def photo():
    from importlib import resources

    path = resources.files("keras_sr.data") / "samples" / "coffee.png"
    return read_image(str(path)).astype(np.float32) / 255.0


def as_torch(image):
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def as_numpy(tensor):
    return tensor[0].permute(1, 2, 0).numpy()


KERNELS = [("iso", 7, 1.3, 1.3, 0.0, 1.0), ("aniso", 13, 2.7, 0.4, 0.8, 1.0),
           ("aniso", 21, 0.2, 3.0, -2.9, 1.0), ("generalized_iso", 9, 1.1, 1.1, 0.0, 0.5),
           ("generalized_aniso", 15, 2.0, 0.9, 1.7, 3.6), ("plateau_iso", 11, 1.6, 1.6, 0.0, 1.0),
           ("plateau_aniso", 21, 2.9, 0.7, -0.6, 1.8)]


@pytest.mark.parametrize("kind,size,sigma_x,sigma_y,theta,beta", KERNELS)
def test_blur_kernels_equal_basicsrs(kind, size, sigma_x, sigma_y, theta, beta):
    anisotropic = kind.endswith("aniso")
    shape = (size, sigma_x, sigma_y if anisotropic else sigma_x, theta if anisotropic else 0.0)
    if kind.startswith("generalized"):
        ours = rd.generalized_gaussian_kernel(*shape, beta)
    elif kind.startswith("plateau"):
        ours = rd.plateau_kernel(*shape, beta)
    else:
        ours = rd.gaussian_kernel(*shape)
    expected = reference.pad_kernel(reference.blur_kernel(kind, size, sigma_x, sigma_y, theta,
                                                          beta))
    np.testing.assert_allclose(ours, expected, atol=1e-6)


@pytest.mark.parametrize("size,cutoff", [(7, np.pi / 3), (13, 2.0), (21, np.pi / 5),
                                         (21, np.pi)])
def test_the_sinc_kernel_equals_basicsrs(size, cutoff):
    np.testing.assert_allclose(rd.sinc_kernel(size, cutoff),
                               reference.sinc_kernel(cutoff, size, pad_to=21), atol=1e-6)


def test_filtering_equals_filter2d(photo):
    image = photo[:97, :130]
    for kernel in (reference.pad_kernel(reference.blur_kernel("aniso", 15, 2.0, 0.7, 0.4)),
                   reference.sinc_kernel(1.2, 21)):
        kernel = kernel.astype(np.float32)
        expected = as_numpy(reference.filter2d(torch, as_torch(image), kernel))
        np.testing.assert_allclose(rd.filter_image(image, kernel), expected, atol=1e-5)


@pytest.mark.parametrize("method", rd.RESIZE_METHODS)
def test_resizing_equals_torch_interpolate(photo, method):
    image = photo[:120, :90]
    interpolate = torch.nn.functional.interpolate
    for factor in (0.15, 0.3, 0.77, 1.0, 1.2, 1.5):
        factor = float(np.float32(factor))  # the value both sides see
        expected = as_numpy(interpolate(as_torch(image), scale_factor=factor, mode=method))
        np.testing.assert_allclose(rd.resize_by(image, factor, method), expected, atol=1e-5)
    for size in ((30, 22), (47, 101), (240, 91)):
        expected = as_numpy(interpolate(as_torch(image), size=size, mode=method))
        np.testing.assert_allclose(rd.interpolate(image, size, method), expected, atol=1e-5)


def test_sharpening_equals_usmsharp(photo):
    image = photo[:160, :200]
    expected = as_numpy(reference.usm_sharp(torch, as_torch(image)))
    ours = rd.unsharp_mask(image[None])[0].numpy()
    # The blurs agree to 2.6e-6 (a 51 x 51 float32 FFT against a float32 convolution), but
    # the 10/255 mask threshold is a step: the few pixels whose residual lies that close to it
    # flip, and each flip moves the blurred mask over its 51 x 51 window by up to 0.0025 of
    # the sharpening. Measured: 99.25% within 1e-5, at most 3.0e-4.
    close = np.abs(ours - expected) < 1e-5
    assert close.mean() > 0.98
    np.testing.assert_allclose(ours, expected, atol=1e-3)


@pytest.mark.parametrize("quality", [30.0, 47.5, 60.0, 95.0])
def test_jpeg_equals_diffjpeg(photo, quality):
    image = photo[:203, :150]  # neither side a multiple of 16: padded
    expected = as_numpy(reference.diff_jpeg(torch, as_torch(image), quality))
    ours = rd.jpeg(image, quality).numpy()
    # A DCT coefficient within rounding of a half step may round the other way and move its
    # 8 x 8 block; none did on this photo.
    assert np.mean(np.abs(ours - expected) < 1e-5) > 0.999
    np.testing.assert_allclose(ours, expected, atol=0.05)


def noise_std(make, count=4):
    return float(np.mean([np.std(make(seed)) for seed in range(count)]))


@pytest.mark.parametrize("side", [64, 160, 256])
@pytest.mark.parametrize("gray", [False, True])
def test_noise_strength_equals_basicsrs(photo, side, gray):
    """Noise standard deviation on a photo crop, the mean of 4 draws a side: the reference's
    gray Poisson noise was 5-11x stronger than keras-sr's before both counted gray levels."""
    image = photo[:side, :side]
    generator = torch.Generator().manual_seed(0)
    for ours, theirs in (
            (lambda seed: rd.gaussian_noise(image, 12.0, [4, seed], gray=gray) - image,
             lambda seed: reference.gaussian_noise(torch, as_torch(image), 12.0, gray,
                                                   generator).numpy()),
            (lambda seed: rd.poisson_noise(image, 2.0, [4, seed], gray=gray) - image,
             lambda seed: reference.poisson_noise(torch, as_torch(image), 2.0, gray,
                                                  generator).numpy())):
        assert noise_std(ours) == pytest.approx(noise_std(theirs), rel=0.03)
