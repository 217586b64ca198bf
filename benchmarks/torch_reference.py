"""PyTorch reference training steps, for timing against keras-sr's on the same CPU.

    python -m benchmarks.torch_reference [--experiments rrdb_psnr_x4 esrgan_x4] [--batch 4]
        [--steps 5] [--threads 2]

Full-size networks in BasicSR's layout, written here from the architectures (ESRGAN §3.1's
RRDBNet: 23 RRDBs of 3 five-conv dense blocks, 64 features, growth 32, residual scale 0.2,
LeakyReLU 0.2, nearest x2 twice; BasicSR's VGGStyleDiscriminator for 128-pixel inputs; VGG19's
convolutions up to conv5_4 before its ReLU, random weights of the real size) and the recipes'
losses: L1 for rrdb_psnr_x4; for esrgan_x4 1e-2 L1 + L1 on VGG features + 5e-3 relativistic
average GAN for the generator and the relativistic discriminator loss, Adam (0.9, 0.99) for
both, one generator and one discriminator update per step as keras-sr's ESRGAN trainer does.
Random data of the recipes' shapes, float32, `--threads` intra-op threads. Needs PyTorch.
"""

import argparse
import json
import platform
import statistics
import time


def build(torch):
    nn = torch.nn

    class DenseBlock(nn.Module):
        def __init__(self, features=64, growth=32):
            super().__init__()
            self.convs = nn.ModuleList(
                nn.Conv2d(features + index * growth, growth if index < 4 else features, 3, 1, 1)
                for index in range(5))
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            features = [x]
            for index, conv in enumerate(self.convs):
                out = conv(torch.cat(features, 1))
                if index < 4:
                    features.append(self.act(out))
            return x + 0.2 * out

    class RRDB(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(DenseBlock(), DenseBlock(), DenseBlock())

        def forward(self, x):
            return x + 0.2 * self.blocks(x)

    class RRDBNet(nn.Module):
        def __init__(self, num_blocks=23):
            super().__init__()
            self.conv_first = nn.Conv2d(3, 64, 3, 1, 1)
            self.body = nn.Sequential(*[RRDB() for _ in range(num_blocks)])
            self.conv_body = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_up1 = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            features = self.conv_first(x)
            features = features + self.conv_body(self.body(features))
            for conv in (self.conv_up1, self.conv_up2):
                features = self.act(conv(nn.functional.interpolate(features, scale_factor=2,
                                                                   mode="nearest")))
            return self.conv_last(self.act(self.conv_hr(features)))

    class VGGStyleDiscriminator(nn.Module):
        def __init__(self, features=64):
            super().__init__()
            layers, channels = [nn.Conv2d(3, features, 3, 1, 1), nn.LeakyReLU(0.2),
                                nn.Conv2d(features, features, 4, 2, 1, bias=False),
                                nn.BatchNorm2d(features), nn.LeakyReLU(0.2)], features
            for out in (features * 2, features * 4, features * 8, features * 8):
                layers += [nn.Conv2d(channels, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out),
                           nn.LeakyReLU(0.2), nn.Conv2d(out, out, 4, 2, 1, bias=False),
                           nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
                channels = out
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 4 * 4, 100),
                                      nn.LeakyReLU(0.2), nn.Linear(100, 1))

        def forward(self, x):
            return self.head(self.features(x))

    def vgg19_conv54():
        layers, channels = [], 3
        plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512]
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, 1, 1), nn.ReLU()]
                channels = item
        vgg = nn.Sequential(*layers[:-1])  # conv5_4 before its ReLU
        for parameter in vgg.parameters():
            parameter.requires_grad_(False)
        return vgg.eval()

    return RRDBNet, VGGStyleDiscriminator, vgg19_conv54


def measure(experiment, batch, steps, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rrdbnet, discriminator_class, vgg19 = build(torch)
    generator = rrdbnet()
    g_optimizer = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.9, 0.99))
    lr = torch.rand(batch, 3, 32, 32)
    hr = torch.rand(batch, 3, 128, 128)
    l1 = torch.nn.L1Loss()
    bce = torch.nn.BCEWithLogitsLoss()
    if experiment == "rrdb_psnr_x4":
        def step():
            g_optimizer.zero_grad(set_to_none=True)
            loss = l1(generator(lr), hr)
            loss.backward()
            g_optimizer.step()
            return loss
    else:
        discriminator = discriminator_class()
        d_optimizer = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.9, 0.99))
        vgg = vgg19()
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

        def step():
            for parameter in discriminator.parameters():
                parameter.requires_grad_(False)
            g_optimizer.zero_grad(set_to_none=True)
            sr = generator(lr)
            real = discriminator(hr).detach()
            fake = discriminator(sr)
            adversarial = (bce(real - fake.mean(), torch.zeros_like(real))
                           + bce(fake - real.mean(), torch.ones_like(fake))) / 2
            perceptual = l1(vgg((sr - mean) / std), vgg((hr - mean) / std).detach())
            g_loss = 1e-2 * l1(sr, hr) + perceptual + 5e-3 * adversarial
            g_loss.backward()
            g_optimizer.step()
            for parameter in discriminator.parameters():
                parameter.requires_grad_(True)
            d_optimizer.zero_grad(set_to_none=True)
            fake = discriminator(sr.detach())
            real = discriminator(hr)
            d_loss = (bce(real - fake.detach().mean(), torch.ones_like(real)) * 0.5
                      + bce(fake - real.detach().mean(), torch.zeros_like(fake)) * 0.5)
            d_loss.backward()
            d_optimizer.step()
            return g_loss

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
