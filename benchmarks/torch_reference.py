"""PyTorch reference networks and training steps: timed against keras-sr's on the same machine,
and the reference the step-parity tests (tests/trainers/test_reference_steps.py) compare with.

    python -m benchmarks.torch_reference [--experiments rrdb_psnr_x4 esrgan_x4 realesrnet_x4
        realesrgan_x4] [--batch 4] [--hr-patch N] [--steps 5] [--threads 2] [--device cuda]
        [--precisions float32 bfloat16]

Written here from the architectures and from BasicSR's training code (the code that trained the
released ESRGAN and Real-ESRGAN models), with BasicSR's parameter names so that keras-sr's
converters move weights both ways: ESRGAN §3.1's RRDBNet (RRDBs of three five-conv dense blocks,
residual scale 0.2, LeakyReLU 0.2, nearest x2 twice); BasicSR's VGGStyleDiscriminator;
Real-ESRGAN's UNetDiscriminatorSN; torchvision's VGG19 `features` (conv5_4 is `features.34`),
before or after its ReLU, with torchvision's or Caffe's preprocessing, or several layers at once.
The steps follow BasicSR's `optimize_parameters`: ESRGAN's (esrgan_model.py), SRGAN's
(srgan_model.py, with the paper's VGG54 MSE / 12.75^2 content loss), Real-ESRGAN's
(realesrgan_model.py, x4plus options) and the PSNR one, each with the recipes' EMA update.
The benchmark runs full-size networks on random data of the recipes' shapes with `--threads`
intra-op threads, on the CPU or a CUDA device, in float32 (PyTorch's defaults: TF32
convolutions on CUDA) or with bfloat16 autocast. Needs PyTorch.
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np

VGG19_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512)
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def build(torch):
    """`(RRDBNet, VGGStyleDiscriminator, VGG19Features)` module classes."""
    nn = torch.nn

    class ResidualDenseBlock(nn.Module):
        def __init__(self, num_features, growth):
            super().__init__()
            for index in range(5):
                setattr(self, f"conv{index + 1}", nn.Conv2d(
                    num_features + index * growth, growth if index < 4 else num_features,
                    3, 1, 1))
            self.lrelu = nn.LeakyReLU(0.2)

        def forward(self, x):
            features = [x]
            for index in range(1, 6):
                out = getattr(self, f"conv{index}")(torch.cat(features, 1))
                if index < 5:
                    features.append(self.lrelu(out))
            return x + 0.2 * out

    class RRDB(nn.Module):
        def __init__(self, num_features, growth):
            super().__init__()
            self.rdb1 = ResidualDenseBlock(num_features, growth)
            self.rdb2 = ResidualDenseBlock(num_features, growth)
            self.rdb3 = ResidualDenseBlock(num_features, growth)

        def forward(self, x):
            return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))

    class RRDBNet(nn.Module):
        """x4 RRDBNet, BasicSR's names."""

        def __init__(self, num_blocks=23, num_features=64, growth=32):
            super().__init__()
            self.conv_first = nn.Conv2d(3, num_features, 3, 1, 1)
            self.body = nn.Sequential(*[RRDB(num_features, growth) for _ in range(num_blocks)])
            for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
                setattr(self, name, nn.Conv2d(num_features, num_features, 3, 1, 1))
            self.conv_last = nn.Conv2d(num_features, 3, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2)

        def forward(self, x):
            features = self.conv_first(x)
            features = features + self.conv_body(self.body(features))
            for conv in (self.conv_up1, self.conv_up2):
                features = self.lrelu(conv(nn.functional.interpolate(
                    features, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(features)))

    class VGGStyleDiscriminator(nn.Module):
        """BasicSR's VGGStyleDiscriminator, for any input size that is a multiple of 32."""

        def __init__(self, num_features=64, input_size=128):
            super().__init__()
            self.conv0_0 = nn.Conv2d(3, num_features, 3, 1, 1)
            self.conv0_1 = nn.Conv2d(num_features, num_features, 4, 2, 1, bias=False)
            self.bn0_1 = nn.BatchNorm2d(num_features)
            channels = num_features
            for stage, multiplier in enumerate((2, 4, 8, 8), start=1):
                out = num_features * multiplier
                setattr(self, f"conv{stage}_0", nn.Conv2d(channels, out, 3, 1, 1, bias=False))
                setattr(self, f"bn{stage}_0", nn.BatchNorm2d(out))
                setattr(self, f"conv{stage}_1", nn.Conv2d(out, out, 4, 2, 1, bias=False))
                setattr(self, f"bn{stage}_1", nn.BatchNorm2d(out))
                channels = out
            side = input_size // 32
            self.linear1 = nn.Linear(channels * side * side, 100)
            self.linear2 = nn.Linear(100, 1)
            self.lrelu = nn.LeakyReLU(0.2)

        def forward(self, x):
            features = self.lrelu(self.conv0_0(x))
            features = self.lrelu(self.bn0_1(self.conv0_1(features)))
            for stage in range(1, 5):
                for half in (0, 1):
                    conv = getattr(self, f"conv{stage}_{half}")
                    features = self.lrelu(getattr(self, f"bn{stage}_{half}")(conv(features)))
            return self.linear2(self.lrelu(self.linear1(torch.flatten(features, 1))))

    class VGG19Features(nn.Module):
        """torchvision's `vgg19().features` up to `last` (34: conv5_4), frozen, in eval mode;
        `preprocess` "torchvision" (ImageNet mean / std) or "caffe" (BGR 0-255 minus means).
        With `taps` (feature indices), the forward pass returns the list of those features
        instead, `last` being the deepest of them."""

        def __init__(self, last=34, preprocess="torchvision", taps=None):
            super().__init__()
            self.taps = tuple(taps) if taps else None
            if self.taps:
                last = max(self.taps)
            layers, channels = [], 3
            for item in VGG19_PLAN:
                if item == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(channels, item, 3, 1, 1), nn.ReLU(inplace=False)]
                    channels = item
            self.features = nn.Sequential(*layers[:last + 1])
            self.preprocess = preprocess
            for parameter in self.parameters():
                parameter.requires_grad_(False)
            self.eval()

        def forward(self, images):
            if self.preprocess == "torchvision":
                mean = images.new_tensor(IMAGENET_RGB_MEAN).view(1, 3, 1, 1)
                std = images.new_tensor(IMAGENET_RGB_STD).view(1, 3, 1, 1)
                images = (images - mean) / std
            else:
                images = images.flip(1) * 255.0 - images.new_tensor(
                    IMAGENET_BGR_MEAN).view(1, 3, 1, 1)
            if not self.taps:
                return self.features(images)
            outputs = []
            for index, layer in enumerate(self.features):
                images = layer(images)
                if index in self.taps:
                    outputs.append(images)
            return outputs

    return RRDBNet, VGGStyleDiscriminator, VGG19Features


def build_srvgg_compact(torch, num_convs=16, num_features=64, scale=4):
    """Real-ESRGAN's SRVGGNetCompact (PReLU), with its parameter names (body.0 the first conv,
    body.1 its PReLU, ..., the last conv's 3 * scale^2 outputs pixel-shuffled), plus the input
    upsampled nearest: what realesr-animevideov3 and realesr-general-x4v3 are."""
    nn = torch.nn

    class SRVGGNetCompact(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(3, num_features, 3, 1, 1), nn.PReLU(num_features)]
            for _ in range(num_convs):
                layers += [nn.Conv2d(num_features, num_features, 3, 1, 1),
                           nn.PReLU(num_features)]
            layers.append(nn.Conv2d(num_features, 3 * scale * scale, 3, 1, 1))
            self.body = nn.ModuleList(layers)
            self.upsampler = nn.PixelShuffle(scale)

        def forward(self, x):
            out = x
            for layer in self.body:
                out = layer(out)
            return self.upsampler(out) + nn.functional.interpolate(x, scale_factor=scale,
                                                                   mode="nearest")

    return SRVGGNetCompact()


def build_unet_discriminator(torch):
    """Real-ESRGAN's `UNetDiscriminatorSN` module class (BasicSR's names): torch's
    `spectral_norm` on every conv but the first and the last, bilinear x2 without corners."""
    nn = torch.nn
    functional = torch.nn.functional

    class UNetDiscriminatorSN(nn.Module):
        def __init__(self, num_features=64, skip_connection=True):
            super().__init__()
            self.skip_connection = skip_connection
            norm = nn.utils.spectral_norm
            self.conv0 = nn.Conv2d(3, num_features, 3, 1, 1)
            channels = num_features
            for index, multiplier in enumerate((2, 4, 8), start=1):
                setattr(self, f"conv{index}", norm(nn.Conv2d(
                    channels, num_features * multiplier, 4, 2, 1, bias=False)))
                channels = num_features * multiplier
            for index, multiplier in enumerate((4, 2, 1, 1, 1), start=4):
                setattr(self, f"conv{index}", norm(nn.Conv2d(
                    channels, num_features * multiplier, 3, 1, 1, bias=False)))
                channels = num_features * multiplier
            self.conv9 = nn.Conv2d(num_features, 1, 3, 1, 1)

        def forward(self, x):
            def lrelu(tensor):
                return functional.leaky_relu(tensor, 0.2)

            x0 = lrelu(self.conv0(x))
            x1 = lrelu(self.conv1(x0))
            x2 = lrelu(self.conv2(x1))
            features = lrelu(self.conv3(x2))
            for conv, skip in ((self.conv4, x2), (self.conv5, x1), (self.conv6, x0)):
                features = lrelu(conv(functional.interpolate(
                    features, scale_factor=2, mode="bilinear", align_corners=False)))
                if self.skip_connection:
                    features = features + skip
            features = lrelu(self.conv8(lrelu(self.conv7(features))))
            return self.conv9(features)

    return UNetDiscriminatorSN


# --- Training steps, as BasicSR's optimize_parameters computes them. ---

def _set_requires_grad(module, flag):
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def psnr_step(torch, generator, g_optimizer, lr, hr, pixel="l1"):
    g_optimizer.zero_grad(set_to_none=True)
    criterion = torch.nn.L1Loss() if pixel == "l1" else torch.nn.MSELoss()
    loss = criterion(generator(lr), hr)
    loss.backward()
    g_optimizer.step()
    return {"g_loss": loss.item()}


def esrgan_step(torch, generator, discriminator, vgg, g_optimizer, d_optimizer, lr, hr,
                perceptual_weight=1.0, adversarial_weight=5e-3, pixel_weight=1e-2):
    """BasicSR's ESRGANModel.optimize_parameters (net_d_iters 1, no init iterations)."""
    bce = torch.nn.BCEWithLogitsLoss()
    l1 = torch.nn.L1Loss()
    _set_requires_grad(discriminator, False)
    g_optimizer.zero_grad(set_to_none=True)
    sr = generator(lr)
    pixel = l1(sr, hr)
    perceptual = l1(vgg(sr), vgg(hr.detach()))
    real = discriminator(hr).detach()
    fake = discriminator(sr)
    adversarial = (bce(real - fake.mean(), torch.zeros_like(real))
                   + bce(fake - real.mean(), torch.ones_like(fake))) / 2
    g_loss = pixel_weight * pixel + perceptual_weight * perceptual \
        + adversarial_weight * adversarial
    g_loss.backward()
    g_optimizer.step()

    _set_requires_grad(discriminator, True)
    d_optimizer.zero_grad(set_to_none=True)
    fake = discriminator(sr.detach()).detach()
    real = discriminator(hr)
    d_real = bce(real - fake.mean(), torch.ones_like(real)) * 0.5
    d_real.backward()
    fake = discriminator(sr.detach())
    d_fake = bce(fake - real.detach().mean(), torch.zeros_like(fake)) * 0.5
    d_fake.backward()
    d_optimizer.step()
    return {"g_loss": g_loss.item(), "pixel_loss": pixel.item(),
            "perceptual_loss": perceptual.item(), "adversarial_loss": adversarial.item(),
            "d_loss": (d_real + d_fake).item()}


def srgan_step(torch, generator, discriminator, vgg, g_optimizer, d_optimizer, lr, hr,
               perceptual_weight=1.0, adversarial_weight=1e-3, feature_scale=1 / 12.75):
    """BasicSR's SRGANModel.optimize_parameters with SRGAN §2.2's losses: MSE between VGG54
    features after ReLU, rescaled by 1/12.75, plus 1e-3 x -log D(G(LR))."""
    bce = torch.nn.BCEWithLogitsLoss()
    _set_requires_grad(discriminator, False)
    g_optimizer.zero_grad(set_to_none=True)
    sr = generator(lr)
    perceptual = torch.nn.functional.mse_loss(vgg(sr) * feature_scale,
                                              vgg(hr.detach()) * feature_scale)
    fake = discriminator(sr)
    adversarial = bce(fake, torch.ones_like(fake))
    g_loss = perceptual_weight * perceptual + adversarial_weight * adversarial
    g_loss.backward()
    g_optimizer.step()

    return {"g_loss": g_loss.item(), "perceptual_loss": perceptual.item(),
            "adversarial_loss": adversarial.item(),
            "d_loss": standard_discriminator_step(torch, discriminator, d_optimizer, hr, sr)}


def standard_discriminator_step(torch, discriminator, d_optimizer, hr, sr):
    """BasicSR's discriminator update with the standard GAN loss (SRGAN's, Real-ESRGAN's): BCE
    of the real logits against 1, backward, then of the detached fakes' against 0, backward,
    one step. Returns the summed loss."""
    bce = torch.nn.BCEWithLogitsLoss()
    _set_requires_grad(discriminator, True)
    d_optimizer.zero_grad(set_to_none=True)
    real = discriminator(hr)
    d_real = bce(real, torch.ones_like(real))
    d_real.backward()
    fake = discriminator(sr.detach())
    d_fake = bce(fake, torch.zeros_like(fake))
    d_fake.backward()
    d_optimizer.step()
    return (d_real + d_fake).item()


REALESRGAN_VGG_TAPS = (2, 7, 16, 25, 34)  # conv1_2, conv2_2, conv3_4, conv4_4, conv5_4
REALESRGAN_VGG_WEIGHTS = (0.1, 0.1, 1.0, 1.0, 1.0)


def realesrgan_step(torch, generator, discriminator, vgg, g_optimizer, d_optimizer, lr, hr,
                    hr_sharpened, adversarial_weight=0.1):
    """BasicSR's RealESRGANModel.optimize_parameters with the x4plus options: L1 and the
    five-layer VGG19 L1 (`vgg` built with `taps=REALESRGAN_VGG_TAPS`) against the unsharp-masked
    HR, 0.1 x standard GAN loss of the per-pixel U-Net logits, the discriminator's real side on
    the plain HR."""
    bce = torch.nn.BCEWithLogitsLoss()
    l1 = torch.nn.L1Loss()
    _set_requires_grad(discriminator, False)
    g_optimizer.zero_grad(set_to_none=True)
    sr = generator(lr)
    pixel = l1(sr, hr_sharpened)
    perceptual = sum(weight * l1(ours, theirs) for weight, ours, theirs in zip(
        REALESRGAN_VGG_WEIGHTS, vgg(sr), vgg(hr_sharpened.detach())))
    fake = discriminator(sr)
    adversarial = bce(fake, torch.ones_like(fake))
    g_loss = pixel + perceptual + adversarial_weight * adversarial
    g_loss.backward()
    g_optimizer.step()
    return {"g_loss": g_loss.item(), "pixel_loss": pixel.item(),
            "perceptual_loss": perceptual.item(), "adversarial_loss": adversarial.item(),
            "d_loss": standard_discriminator_step(torch, discriminator, d_optimizer, hr, sr)}


def update_ema(torch, ema, model, decay=0.999):
    """BasicSR's model_ema: every parameter of `ema` moves to decay x itself + (1 - decay) x
    the model's."""
    with torch.no_grad():
        for average, parameter in zip(ema.parameters(), model.parameters()):
            average.mul_(decay).add_(parameter, alpha=1 - decay)


# --- Real-ESRGAN's training-pair generation, written from reading realesrgan_dataset.py
# (RealESRGANDataset.__getitem__), realesrgan_model.py (RealESRGANModel.feed_data) and BasicSR's
# degradations.py / img_process_util.py, for one image at a time (batch 1). Kernels in numpy
# float64 as BasicSR makes them; the image work in torch float32 as the model does. ---

def kernel_grid(size):
    """BasicSR's mesh_grid: [size, size, 2] of (x, y), x the column offset from the centre."""
    axis = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx, yy], -1)


def blur_kernel(kind, size, sigma_x, sigma_y, theta, beta=1.0):
    """BasicSR's bivariate_Gaussian / _generalized_Gaussian / _plateau (kind "iso", "aniso",
    "generalized_iso", ...): exp(-q / 2), exp(-q^beta / 2), 1 / (q^beta + 1), normalised,
    q = x^T S^-1 x with S = U diag(sigma_x^2, sigma_y^2) U^T, U the rotation by theta."""
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = sigma_x, 0.0
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    sigma = rotation @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rotation.T
    grid = kernel_grid(size)
    q = np.sum((grid @ np.linalg.inv(sigma)) * grid, -1)
    if kind.startswith("generalized"):
        kernel = np.exp(-0.5 * q ** beta)
    elif kind.startswith("plateau"):
        kernel = 1.0 / (q ** beta + 1.0)
    else:
        kernel = np.exp(-0.5 * q)
    return kernel / kernel.sum()


def sinc_kernel(cutoff, size, pad_to=0):
    """BasicSR's circular_lowpass_kernel: cutoff J1(cutoff r) / (2 pi r), cutoff^2 / (4 pi) at
    the centre, normalised, zero-padded to `pad_to`."""
    from scipy import special

    centre = (size - 1) / 2
    rows, columns = np.mgrid[0:size, 0:size]
    radius = np.sqrt((rows - centre) ** 2 + (columns - centre) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * special.j1(cutoff * radius) / (2 * np.pi * radius)
    kernel[size // 2, size // 2] = cutoff ** 2 / (4 * np.pi)
    kernel = kernel / kernel.sum()
    return pad_kernel(kernel, pad_to)


def pad_kernel(kernel, size=21):
    pad = max(size - kernel.shape[0], 0) // 2
    return np.pad(kernel, pad)


def filter2d(torch, image, kernel):
    """BasicSR's filter2D: `image` [1, C, H, W] correlated with `kernel` ([k, k]) per channel,
    reflect padding of k // 2."""
    kernel = torch.as_tensor(kernel, dtype=image.dtype)
    half = kernel.shape[-1] // 2
    padded = torch.nn.functional.pad(image, (half, half, half, half), mode="reflect")
    channels = image.shape[1]
    weights = kernel[None, None].repeat(channels, 1, 1, 1)
    return torch.nn.functional.conv2d(padded, weights, groups=channels)


def usm_sharp(torch, image, weight=0.5, radius=51, threshold=10):
    """BasicSR's USMSharp (radius 50 made odd; OpenCV's Gaussian for that size, sigma 0 ->
    0.3 ((k - 1) / 2 - 1) + 0.8)."""
    sigma = 0.3 * ((radius - 1) * 0.5 - 1) + 0.8
    axis = np.arange(radius) - (radius - 1) / 2
    line = np.exp(-axis ** 2 / (2 * sigma ** 2))
    line /= line.sum()
    kernel = np.outer(line, line).astype(np.float32)
    residual = image - filter2d(torch, image, kernel)
    mask = (torch.abs(residual) * 255 > threshold).to(image.dtype)
    soft_mask = filter2d(torch, mask, kernel)
    sharp = torch.clip(image + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * image


def gaussian_noise(torch, image, sigma, gray, generator=None):
    """BasicSR's generate_gaussian_noise_pt for one image: N(0, sigma / 255), one field for
    every channel when gray."""
    shape = (1, 1, *image.shape[2:]) if gray else image.shape
    return torch.randn(shape, dtype=image.dtype, generator=generator) * sigma / 255.0


def _poisson(torch, image, generator):
    image = torch.clamp((image * 255.0).round(), 0, 255) / 255.0
    levels = 2 ** np.ceil(np.log2(len(torch.unique(image))))
    return torch.poisson(image * levels, generator=generator) / levels - image


def poisson_noise(torch, image, scale, gray, generator=None):
    """BasicSR's generate_poisson_noise_pt for one image: gray noise is drawn on torchvision's
    rgb_to_grayscale of the image, rounded to the 8-bit grid before the levels are counted."""
    if gray:
        weights = torch.tensor([0.2989, 0.587, 0.114], dtype=image.dtype)[None, :, None, None]
        noise = _poisson(torch, (image * weights).sum(1, keepdim=True), generator)
        noise = noise.expand_as(image)
    else:
        noise = _poisson(torch, image, generator)
    return noise * scale


def crop_or_pad(image, size, rng):
    """RealESRGANDataset's "crop or pad to 400" of an HWC numpy image: BORDER_REFLECT_101 at the
    bottom and right (numpy's reflect), then a random crop."""
    height, width = image.shape[:2]
    image = np.pad(image, [(0, max(size - height, 0)), (0, max(size - width, 0)), (0, 0)],
                   mode="reflect")
    top = rng.integers(0, image.shape[0] - size + 1)
    left = rng.integers(0, image.shape[1] - size + 1)
    return image[top:top + size, left:left + size]


REALESRGAN_X4PLUS = {
    "kernel_list": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                    "plateau_aniso"],
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3], "betag_range": [0.5, 4], "betap_range": [1, 2],
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5], "betag_range2": [0.5, 4], "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
    "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30], "poisson_scale_range": [0.05, 3], "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95],
    "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25], "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95],
    "scale": 4, "gt_size": 256, "crop_pad_size": 400, "use_hflip": True,
}


def _random_beta(rng, low, high):
    """BasicSR's draw of the generalized / plateau shape: U(low, 1) or U(1, high) evenly."""
    return rng.uniform(low, 1) if rng.uniform() < 0.5 else rng.uniform(1, high)


def random_kernel(rng, opt, suffix=""):
    """RealESRGANDataset's kernel1 (suffix "") or kernel2 ("2"), padded to 21."""
    size = int(rng.choice(np.arange(7, 22, 2)))
    if rng.uniform() < opt["sinc_prob" + suffix]:
        cutoff = rng.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi)
        return pad_kernel(sinc_kernel(cutoff, size))
    kind = opt["kernel_list"][rng.choice(6, p=opt["kernel_prob" + suffix])]
    low, high = opt["blur_sigma" + suffix]
    sigma_x, sigma_y = rng.uniform(low, high), rng.uniform(low, high)
    theta = rng.uniform(-np.pi, np.pi)
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _random_beta(rng, *opt["betag_range" + suffix])
    elif kind.startswith("plateau"):
        beta = _random_beta(rng, *opt["betap_range" + suffix])
    return pad_kernel(blur_kernel(kind, size, sigma_x, sigma_y, theta, beta))


def diff_jpeg(torch, image, quality):
    """BasicSR's DiffJPEG(differentiable=False) for `image` [1, 3, H, W] in [0, 1] at a float
    quality: zero padding to multiples of 16, YCbCr, 2 x 2 average-pooled chroma, 8 x 8 DCT by
    a [8, 8, 8, 8] cosine tensor, the (transposed) standard tables times the quality factor,
    torch.round, the inverse, chroma repeated, RGB clamped to [0, 255]."""
    import itertools

    functional = torch.nn.functional
    factor = (5000.0 / quality if quality < 50 else 200.0 - quality * 2) / 100.0
    luma_table = torch.tensor(np.array(
        [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
         [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
         [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
         [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
        np.float32).T.copy())
    chroma_table = np.full((8, 8), 99, np.float32)
    chroma_table[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99],
                                     [47, 66, 99, 99]]).T
    chroma_table = torch.tensor(chroma_table)
    forward = np.zeros((8, 8, 8, 8), np.float32)
    inverse = np.zeros((8, 8, 8, 8), np.float32)
    for x, y, u, v in itertools.product(range(8), repeat=4):
        forward[x, y, u, v] = np.cos((2 * x + 1) * u * np.pi / 16) * np.cos(
            (2 * y + 1) * v * np.pi / 16)
        inverse[x, y, u, v] = np.cos((2 * u + 1) * x * np.pi / 16) * np.cos(
            (2 * v + 1) * y * np.pi / 16)
    forward, inverse = torch.tensor(forward), torch.tensor(inverse)
    alpha = np.array([1.0 / np.sqrt(2)] + [1.0] * 7)
    alpha = torch.tensor(np.outer(alpha, alpha), dtype=torch.float32)
    height, width = image.shape[2:]
    padded = functional.pad(image, (0, (-width) % 16, 0, (-height) % 16))
    to_ycbcr = torch.tensor(np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                                      [0.5, -0.418688, -0.081312]], np.float32).T.copy())
    ycbcr = torch.tensordot((padded * 255).permute(0, 2, 3, 1), to_ycbcr, dims=1) \
        + torch.tensor([0.0, 128.0, 128.0])
    planes = [ycbcr[..., 0]] + [functional.avg_pool2d(ycbcr[None, ..., channel], 2)[0]
                                for channel in (1, 2)]
    restored = []
    for plane, table in zip(planes, (luma_table, chroma_table, chroma_table)):
        rows, columns = plane.shape[1] // 8, plane.shape[2] // 8
        blocks = plane.view(1, rows, 8, columns, 8).permute(0, 1, 3, 2, 4) - 128
        coefficients = 0.25 * alpha * torch.tensordot(blocks, forward, dims=2)
        quantised = torch.round(coefficients / (table * factor)) * (table * factor)
        spatial = 0.25 * torch.tensordot(quantised * alpha, inverse, dims=2) + 128
        restored.append(spatial.permute(0, 1, 3, 2, 4).reshape(1, rows * 8, columns * 8))
    chroma = [plane.repeat_interleave(2, 1).repeat_interleave(2, 2) for plane in restored[1:]]
    ycbcr = torch.stack([restored[0]] + chroma, -1) + torch.tensor([0.0, -128.0, -128.0])
    to_rgb = torch.tensor(np.array([[1.0, 0.0, 1.402], [1, -0.344136, -0.714136],
                                    [1, 1.772, 0]], np.float32).T.copy())
    rgb = torch.clamp(torch.tensordot(ycbcr, to_rgb, dims=1), 0, 255) / 255
    return rgb.permute(0, 3, 1, 2)[:, :, :height, :width]


def _resize_stage(torch, out, rng, prob, resize_range, size=None):
    direction = rng.choice(3, p=prob)
    factor = (rng.uniform(1, resize_range[1]), rng.uniform(resize_range[0], 1), 1.0)[direction]
    mode = ("area", "bilinear", "bicubic")[rng.integers(3)]
    interpolate = torch.nn.functional.interpolate
    if size is None:
        return interpolate(out, scale_factor=factor, mode=mode)
    return interpolate(out, size=tuple(int(side * factor) for side in size), mode=mode)


def _noise_stage(torch, out, rng, opt, suffix, generator):
    gray = rng.uniform() < opt["gray_noise_prob" + suffix]
    if rng.uniform() < opt["gaussian_noise_prob" + suffix]:
        noise = gaussian_noise(torch, out, rng.uniform(*opt["noise_range" + suffix]), gray,
                               generator)
    else:
        noise = poisson_noise(torch, out, rng.uniform(*opt["poisson_scale_range" + suffix]),
                              gray, generator)
    return torch.clamp(out + noise, 0, 1)


def realesrgan_pair(torch, hr_image, rng, opt=REALESRGAN_X4PLUS, jpeg=diff_jpeg,
                    generator=None):
    """One (LR, HR) training pair from an HWC float32 numpy image in [0, 1], as the dataset
    and feed_data make it: flip, crop or pad to 400, kernels; USM of the crop, first stage
    (blur, resize by a factor, noise, JPEG), second stage (blur with the second-blur
    probability, resize to a factor of the LR size, noise), then in random order [resize to
    the LR size + final sinc] and JPEG; rounded to 8 bits; then the paired random crop. Draws
    from `rng` (numpy) and the noise from `generator` (torch). `[1, 3, h, w]` tensors."""
    scale = opt["scale"]
    if opt["use_hflip"] and rng.uniform() < 0.5:
        hr_image = hr_image[:, ::-1]
    gt = crop_or_pad(hr_image, opt["crop_pad_size"], rng)
    kernel1, kernel2 = random_kernel(rng, opt), random_kernel(rng, opt, "2")
    sinc = np.zeros([21, 21])
    sinc[10, 10] = 1.0
    if rng.uniform() < opt["final_sinc_prob"]:
        size = int(rng.choice(np.arange(7, 22, 2)))
        sinc = sinc_kernel(rng.uniform(np.pi / 3, np.pi), size, pad_to=21)
    gt = torch.from_numpy(np.ascontiguousarray(gt, np.float32)).permute(2, 0, 1)[None]
    height, width = gt.shape[2:]
    out = filter2d(torch, usm_sharp(torch, gt), kernel1.astype(np.float32))
    out = _resize_stage(torch, out, rng, opt["resize_prob"], opt["resize_range"])
    out = _noise_stage(torch, out, rng, opt, "", generator)
    out = jpeg(torch, torch.clamp(out, 0, 1), rng.uniform(*opt["jpeg_range"]))
    if rng.uniform() < opt["second_blur_prob"]:
        out = filter2d(torch, out, kernel2.astype(np.float32))
    out = _resize_stage(torch, out, rng, opt["resize_prob2"], opt["resize_range2"],
                        size=(height / scale, width / scale))
    out = _noise_stage(torch, out, rng, opt, "2", generator)

    def back_and_sinc(out):
        mode = ("area", "bilinear", "bicubic")[rng.integers(3)]
        out = torch.nn.functional.interpolate(out, size=(height // scale, width // scale),
                                              mode=mode)
        return filter2d(torch, out, sinc.astype(np.float32))

    if rng.uniform() < 0.5:
        out = back_and_sinc(out)
        out = jpeg(torch, torch.clamp(out, 0, 1), rng.uniform(*opt["jpeg_range2"]))
    else:
        out = jpeg(torch, torch.clamp(out, 0, 1), rng.uniform(*opt["jpeg_range2"]))
        out = back_and_sinc(out)
    lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
    lq_size = opt["gt_size"] // scale
    top = rng.integers(0, lq.shape[2] - lq_size + 1)
    left = rng.integers(0, lq.shape[3] - lq_size + 1)
    lq = lq[:, :, top:top + lq_size, left:left + lq_size]
    gt = gt[:, :, top * scale:top * scale + opt["gt_size"],
            left * scale:left * scale + opt["gt_size"]]
    return lq, gt


# --- Moving weights between keras-sr's networks and these. ---

def discriminator_state_dict(discriminator):
    """A keras-sr `VGGStyleDiscriminator`'s weights as the state dict of `VGGStyleDiscriminator`
    above (numpy, float32): conv kernels HWIO -> OIHW, BN gamma / beta / moving statistics ->
    weight / bias / running_mean / running_var, and the first dense layer's rows reordered
    from Keras' (H, W, C) flattening to PyTorch's (C, H, W)."""
    state = {}

    def conv(torch_name, keras_name):
        weights = discriminator.get_layer(keras_name).get_weights()
        state[f"{torch_name}.weight"] = np.ascontiguousarray(weights[0].transpose(3, 2, 0, 1))
        if len(weights) > 1:
            state[f"{torch_name}.bias"] = weights[1]

    def batch_norm(torch_name, keras_name):
        gamma, beta, mean, variance = discriminator.get_layer(keras_name).get_weights()
        state.update({f"{torch_name}.weight": gamma, f"{torch_name}.bias": beta,
                      f"{torch_name}.running_mean": mean, f"{torch_name}.running_var": variance})

    conv("conv0_0", "conv0_0")
    conv("conv0_1", "conv0_1_conv")
    batch_norm("bn0_1", "conv0_1_bn")
    for stage in range(1, 5):
        for half in (0, 1):
            conv(f"conv{stage}_{half}", f"conv{stage}_{half}_conv")
            batch_norm(f"bn{stage}_{half}", f"conv{stage}_{half}_bn")
    kernel, bias = discriminator.get_layer("dense1").get_weights()
    channels = discriminator.get_layer("conv4_1_conv").filters
    side = int(round((kernel.shape[0] // channels) ** 0.5))
    state["linear1.weight"] = np.ascontiguousarray(
        kernel.reshape(side, side, channels, -1).transpose(3, 2, 0, 1).reshape(-1, kernel.shape[0]))
    state["linear1.bias"] = bias
    kernel, bias = discriminator.get_layer("logits").get_weights()
    state["linear2.weight"] = np.ascontiguousarray(kernel.T)
    state["linear2.bias"] = bias
    return {key: np.asarray(value, np.float32) for key, value in state.items()}


def vgg_state_dict(extractor):
    """The weights of a keras-sr `vgg19_features` extractor as torchvision's `features.N`
    state dict (its convs in order; the last one is the `_linear` copy when it was built before
    activation)."""
    from keras_sr.losses.perceptual import TORCHVISION_CONV_INDICES

    convs = [layer for layer in extractor.layers if hasattr(layer, "kernel")]
    state = {}
    for index, layer in zip(TORCHVISION_CONV_INDICES, convs):
        kernel, bias = layer.get_weights()
        state[f"features.{index}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        state[f"features.{index}.bias"] = bias
    return state


def load_state(module, state_dict):
    """Loads a numpy state dict into a PyTorch module (every key must match)."""
    import torch

    module.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value
                            in state_dict.items()}, strict=False)
    missing = set(module.state_dict()) - set(state_dict) - {
        key for key in module.state_dict() if key.endswith("num_batches_tracked")}
    if missing:
        raise KeyError(f"no value for {sorted(missing)[:5]}")


# --- The benchmark. ---

# Each experiment's recipe: (HR patch, generator step only, discriminator class or None).
RECIPES = {"rrdb_psnr_x4": (128, None), "esrgan_x4": (128, "vgg"),
           "realesrnet_x4": (256, None), "realesrgan_x4": (256, "unet")}


def measure(experiment, batch, steps, threads, device="cpu", precision="float32",
            hr_patch=None):
    import contextlib
    import copy

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hr_patch = hr_patch or RECIPES[experiment][0]
    kind = RECIPES[experiment][1]
    rrdbnet, vgg_discriminator, vgg19 = build(torch)
    generator = rrdbnet().to(device)
    g_optimizer = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.9, 0.99))
    lr = torch.rand(batch, 3, hr_patch // 4, hr_patch // 4, device=device)
    hr = torch.rand(batch, 3, hr_patch, hr_patch, device=device)
    # Every recipe here keeps an EMA of the generator at 0.999 (BasicSR's
    # train_RRDBNet_PSNR_x4.yml and train_ESRGAN_x4.yml, Real-ESRGAN's train_realesrnet_x4plus /
    # realesrgan_x4plus.yml), as keras-sr's do: both sides update it every step.
    ema = copy.deepcopy(generator)
    if kind is None:
        def step():
            return psnr_step(torch, generator, g_optimizer, lr, hr)
    elif kind == "vgg":
        discriminator = vgg_discriminator(input_size=hr_patch).to(device)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.9, 0.99))
        vgg = vgg19().to(device)

        def step():
            return esrgan_step(torch, generator, discriminator, vgg, g_optimizer, d_optimizer,
                               lr, hr)
    else:
        discriminator = build_unet_discriminator(torch)().to(device)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.9, 0.99))
        vgg = vgg19(taps=REALESRGAN_VGG_TAPS).to(device)
        hr_sharpened = hr.clone()  # the unsharp mask's cost is left out: same for both sides

        def step():
            return realesrgan_step(torch, generator, discriminator, vgg, g_optimizer,
                                   d_optimizer, lr, hr, hr_sharpened)

    def timed_step():
        # Mixed precision as PyTorch users write it: autocast around the forward passes,
        # float32 weights and optimizer (bfloat16 needs no loss scaling).
        autocast = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
                    if precision == "bfloat16" else contextlib.nullcontext())
        with autocast:
            logs = step()
        update_ema(torch, ema, generator)
        return logs

    def synchronize():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2 if torch.device(device).type == "cuda" else 1):
        timed_step()
    synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        timed_step()
        synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"experiment": experiment, "framework": f"PyTorch {torch.__version__}",
            "device": device_name(torch, device), "precision": precision, "batch": batch,
            "hr_patch": hr_patch, "threads": threads, "step_s": median,
            "pairs_per_s": batch / median,
            "generator_parameters": sum(p.numel() for p in generator.parameters())}


def device_name(torch, device):
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["rrdb_psnr_x4", "esrgan_x4"],
                        choices=sorted(RECIPES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--hr-patch", type=int,
                        help="HR patch side; defaults to each recipe's (128, Real-ESRGAN 256)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--precisions", nargs="+", default=["float32"],
                        choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    rows = [measure(name, args.batch, args.steps, args.threads, args.device, precision,
                    args.hr_patch)
            for name in args.experiments for precision in args.precisions]
    print(f"{rows[0]['framework']} on {rows[0]['device']}, batch {args.batch}, median of "
          f"{args.steps} steps after the warm-up, {args.threads} threads; {platform.machine()}")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    main()
