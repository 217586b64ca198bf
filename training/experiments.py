"""Named experiments: the papers' recipes as plain factory functions.

The two-stage recipes: `srresnet_x4` then `srgan_x4 --init-from <srresnet run>`, and
`rrdb_psnr_x4` then `esrgan_x4 --init-from <rrdb_psnr run>`. The paper experiments need training
data (`--set data.train=DIV2K_train_HR` or `data.tfds=div2k/bicubic_x4`); `quick` brings its own.
"""

import os
from importlib import resources

from training.config import (
    DataConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
)

SAMPLES = str(resources.files("keras_sr.data") / "samples")


def srresnet_x4():
    """SRGAN §3.2: SRResNet with MSE, Adam 1e-4 (beta1 0.9), batch 16 of 96x96 HR, 1e6 steps."""
    return ExperimentConfig(
        name="srresnet_x4",
        model=ModelConfig(generator="srresnet", scale=4, num_blocks=16, num_features=64),
        data=DataConfig(hr_patch_size=96, batch_size=16),
        loss=LossConfig(pixel="mse", pixel_weight=1.0),
        g_optimizer=OptimizerConfig(learning_rate=1e-4, beta_1=0.9, beta_2=0.999),
        train=TrainConfig(steps=1_000_000, log_every=100, validate_every=5000,
                          checkpoint_every=5000),
    )


def srgan_x4():
    """SRGAN §3.2: from an srresnet_x4 run; VGG54 content loss (/12.75, MSE) + 1e-3 GAN;
    1e5 steps at 1e-4 then 1e5 at 1e-5."""
    return ExperimentConfig(
        name="srgan_x4",
        model=ModelConfig(generator="srresnet", scale=4, num_blocks=16, num_features=64,
                          discriminator="srgan"),
        data=DataConfig(hr_patch_size=96, batch_size=16),
        loss=LossConfig(pixel="mse", pixel_weight=0.0, perceptual="vgg19_54_after_relu",
                        perceptual_criterion="mse", perceptual_feature_scale=1 / 12.75,
                        perceptual_weight=1.0, adversarial="standard", adversarial_weight=1e-3),
        g_optimizer=OptimizerConfig(learning_rate=1e-4, milestones=(100_000,), decay=0.1),
        d_optimizer=OptimizerConfig(learning_rate=1e-4, milestones=(100_000,), decay=0.1),
        train=TrainConfig(steps=200_000, validate_every=5000, checkpoint_every=5000),
    )


def rrdb_psnr_x4():
    """ESRGAN §4.1: RRDBNet with L1, Adam 2e-4 (0.9, 0.99) halved every 2e5 steps, batch 16
    of 128x128 HR, 1e6 steps."""
    return ExperimentConfig(
        name="rrdb_psnr_x4",
        model=ModelConfig(generator="rrdbnet", scale=4),
        data=DataConfig(hr_patch_size=128, batch_size=16),
        loss=LossConfig(pixel="l1", pixel_weight=1.0),
        g_optimizer=OptimizerConfig(learning_rate=2e-4, beta_1=0.9, beta_2=0.99,
                                    milestones=(200_000, 400_000, 600_000, 800_000), decay=0.5),
        # The paper is silent on EMA; BasicSR's train_RRDBNet_PSNR_x4.yml keeps one at 0.999.
        train=TrainConfig(steps=1_000_000, validate_every=5000, checkpoint_every=5000,
                          ema_decay=0.999),
    )


def esrgan_x4():
    """ESRGAN §4.1: from an rrdb_psnr_x4 run; L = L_percep + 5e-3 L_G^Ra + 1e-2 L1, VGG54 before
    ReLU; Adam 1e-4 (0.9, 0.99) for G and D, halved at 50k/100k/200k/300k; 400k steps; EMA
    0.999 (BasicSR's train_ESRGAN_x4.yml)."""
    # The perceptual loss uses torchvision's VGG19, as BasicSR (the code behind the released
    # models) does: the loss weights were tuned on its features. SRGAN keeps Keras' Caffe VGG.
    schedule = OptimizerConfig(learning_rate=1e-4, beta_1=0.9, beta_2=0.99,
                               milestones=(50_000, 100_000, 200_000, 300_000), decay=0.5)
    return ExperimentConfig(
        name="esrgan_x4",
        model=ModelConfig(generator="rrdbnet", scale=4, discriminator="vgg_style"),
        data=DataConfig(hr_patch_size=128, batch_size=16),
        loss=LossConfig(pixel="l1", pixel_weight=1e-2, perceptual="vgg19_54_before_relu",
                        perceptual_criterion="l1", perceptual_weight=1.0,
                        adversarial="relativistic", adversarial_weight=5e-3,
                        vgg_weights="torchvision"),
        g_optimizer=schedule,
        d_optimizer=schedule,
        # The paper is silent on EMA; BasicSR's yml, whose runs made the released weights,
        # keeps one at 0.999.
        train=TrainConfig(steps=400_000, validate_every=5000, checkpoint_every=5000,
                          ema_decay=0.999),
    )


def realesrnet_x4():
    """Real-ESRGAN §4.1: RRDBNet with L1 on Real-ESRGAN's second-order degradations
    (data.degradation=realesrgan) against the unsharp-masked HR, from an ESRGAN-PSNR
    (rrdb_psnr_x4) run or a preset; Adam 2e-4 (0.9, 0.99), 256x256 HR, flips without
    rotations, EMA 0.999, 1e6 steps, global batch 48 (the reference's 12 per GPU on 4 GPUs;
    data.batch_size=12 fits one smaller GPU)."""
    return ExperimentConfig(
        name="realesrnet_x4",
        model=ModelConfig(generator="rrdbnet", scale=4),
        data=DataConfig(hr_patch_size=256, batch_size=48, degradation="realesrgan",
                        rotate=False),
        loss=LossConfig(pixel="l1", pixel_weight=1.0, pixel_sharpened=True),  # gt_usm
        g_optimizer=OptimizerConfig(learning_rate=2e-4, beta_1=0.9, beta_2=0.99),
        train=TrainConfig(steps=1_000_000, validate_every=5000, checkpoint_every=5000,
                          ema_decay=0.999),
    )


def realesrgan_x4():
    """Real-ESRGAN §4.1: from a realesrnet_x4 run (or the realesrgan-x4plus preset, to
    fine-tune); L1 + VGG19 conv1_2..conv5_4 (0.1, 0.1, 1, 1, 1, before ReLU, torchvision's
    VGG) against the unsharp-masked HR + 0.1 x standard GAN with the U-Net discriminator (whose
    real images are the HR as it is);
    Adam 1e-4 (0.9, 0.99) for both, EMA 0.999, 256x256 HR, flips without rotations, 4e5
    steps, global batch 48 (the reference's 12 per GPU on 4 GPUs; data.batch_size=12 fits one
    smaller GPU)."""
    adam = OptimizerConfig(learning_rate=1e-4, beta_1=0.9, beta_2=0.99)
    return ExperimentConfig(
        name="realesrgan_x4",
        model=ModelConfig(generator="rrdbnet", scale=4, discriminator="unet_sn"),
        data=DataConfig(hr_patch_size=256, batch_size=48, degradation="realesrgan",
                        rotate=False),
        loss=LossConfig(pixel="l1", pixel_weight=1.0, perceptual="vgg19_realesrgan",
                        perceptual_criterion="l1", perceptual_weight=1.0,
                        adversarial="standard", adversarial_weight=0.1,
                        vgg_weights="torchvision",
                        # l1_gt_usm, percep_gt_usm: true; gan_gt_usm: false
                        pixel_sharpened=True, perceptual_sharpened=True,
                        adversarial_sharpened=False),
        g_optimizer=adam,
        d_optimizer=adam,
        train=TrainConfig(steps=400_000, validate_every=5000, checkpoint_every=5000,
                          ema_decay=0.999),
    )


def quick():
    """The default run: a small PSNR-oriented RRDBNet x4 on the bundled sample photos, under a
    minute on a 2-core CPU with native bfloat16, three to four on an AVX2-only one (213 s on a
    2-core AMD Zen 3 with oneDNN, which training turns on there; 472 s with Eigen before);
    `chelsea.png` is held out for validation."""
    return ExperimentConfig(
        name="quick",
        model=ModelConfig(generator="rrdbnet", scale=4, num_blocks=1, num_features=32,
                          growth_channels=16),
        data=DataConfig(
            train=tuple(os.path.join(SAMPLES, name)
                        for name in ("astronaut.png", "coffee.png", "rocket.jpg")),
            validation=(os.path.join(SAMPLES, "chelsea.png"),),
            hr_patch_size=64, batch_size=8),
        loss=LossConfig(pixel="l1", pixel_weight=1.0),
        # A short run wants a high rate that anneals: cosine from 2e-3 (after 100 warm-up steps)
        # gives +0.57 dB over bicubic in 1600 steps (513 s on 2 cores) where 3e-4 with step
        # decays had +0.23 dB in 2000. Under bfloat16 (train.precision=auto on a CPU with
        # AVX512_BF16) 1600 steps ranged +0.47 to +0.59 dB over five runs; 1800 keep every run
        # above +0.56 dB in either precision (BENCHMARKS.md, "The default training run").
        g_optimizer=OptimizerConfig(learning_rate=2e-3, beta_1=0.9, beta_2=0.99,
                                    schedule="cosine", warmup_steps=100),
        train=TrainConfig(steps=1800, log_every=50, validate_every=900, checkpoint_every=900),
    )


EXPERIMENTS = {
    "quick": quick,
    "srresnet_x4": srresnet_x4,
    "srgan_x4": srgan_x4,
    "rrdb_psnr_x4": rrdb_psnr_x4,
    "esrgan_x4": esrgan_x4,
    "realesrnet_x4": realesrnet_x4,
    "realesrgan_x4": realesrgan_x4,
}
