"""PyTorch reference networks and training steps: timed against keras-sr's on the same CPU, and
the reference the step-parity tests (tests/trainers/test_reference_steps.py) compare with.

    python -m benchmarks.torch_reference [--experiments rrdb_psnr_x4 esrgan_x4] [--batch 4]
        [--steps 5] [--threads 2]

Written here from the architectures and from BasicSR's training code (the code that trained the
released ESRGAN models), with BasicSR's parameter names so that keras-sr's converters move
weights both ways: ESRGAN §3.1's RRDBNet (RRDBs of three five-conv dense blocks, residual scale
0.2, LeakyReLU 0.2, nearest x2 twice); BasicSR's VGGStyleDiscriminator; torchvision's VGG19
`features` (conv5_4 is `features.34`), before or after its ReLU, with torchvision's or Caffe's
preprocessing. The steps follow BasicSR's `optimize_parameters`: ESRGAN's (esrgan_model.py),
SRGAN's (srgan_model.py, with the paper's VGG54 MSE / 12.75^2 content loss) and the PSNR one.
The benchmark runs full-size networks on random data of the recipes' shapes, float32, with
`--threads` intra-op threads. Needs PyTorch.
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
        `preprocess` "torchvision" (ImageNet mean / std) or "caffe" (BGR 0-255 minus means)."""

        def __init__(self, last=34, preprocess="torchvision"):
            super().__init__()
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
                mean = torch.tensor(IMAGENET_RGB_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
                std = torch.tensor(IMAGENET_RGB_STD, dtype=images.dtype).view(1, 3, 1, 1)
                images = (images - mean) / std
            else:
                images = images.flip(1) * 255.0 - torch.tensor(
                    IMAGENET_BGR_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
            return self.features(images)

    return RRDBNet, VGGStyleDiscriminator, VGG19Features


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

    _set_requires_grad(discriminator, True)
    d_optimizer.zero_grad(set_to_none=True)
    real = discriminator(hr)
    d_real = bce(real, torch.ones_like(real))
    d_real.backward()
    fake = discriminator(sr.detach())
    d_fake = bce(fake, torch.zeros_like(fake))
    d_fake.backward()
    d_optimizer.step()
    return {"g_loss": g_loss.item(), "perceptual_loss": perceptual.item(),
            "adversarial_loss": adversarial.item(), "d_loss": (d_real + d_fake).item()}


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

def measure(experiment, batch, steps, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rrdbnet, discriminator_class, vgg19 = build(torch)
    generator = rrdbnet()
    g_optimizer = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.9, 0.99))
    lr = torch.rand(batch, 3, 32, 32)
    hr = torch.rand(batch, 3, 128, 128)
    if experiment == "rrdb_psnr_x4":
        def step():
            return psnr_step(torch, generator, g_optimizer, lr, hr)
    else:
        discriminator = discriminator_class()
        d_optimizer = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.9, 0.99))
        vgg = vgg19()

        def step():
            return esrgan_step(torch, generator, discriminator, vgg, g_optimizer, d_optimizer,
                               lr, hr)

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"experiment": experiment, "framework": f"PyTorch {torch.__version__} float32",
            "batch": batch, "hr_patch": 128, "threads": threads, "step_s": median,
            "generator_parameters": sum(p.numel() for p in generator.parameters())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["rrdb_psnr_x4", "esrgan_x4"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rows = [measure(name, args.batch, args.steps, args.threads) for name in args.experiments]
    print(f"{rows[0]['framework']}, batch {args.batch}, median of {args.steps} steps after the "
          f"first, {args.threads} threads; {platform.machine()}")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    main()
