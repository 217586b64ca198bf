"""Validation during training: NIQE / LPIPS for GAN runs, and generator_best.keras chosen by
train.best_metric."""

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.perceptual_metrics import linear_state, trunk_state
from keras_sr.convert import torch as torch_files
from tests.losses.test_perceptual import tiny_extractor
from tests.training.test_evaluate import natural_folder, natural_like
from tests.training.test_fit import TINY_MODEL
from training import config as config_lib
from training import fit, loop


@pytest.fixture
def folders(tmp_path, rng):
    train = natural_folder(tmp_path / "hr", rng, 2, 40, 44)
    Image.fromarray(natural_like(rng, 208, 208)).save(tmp_path / "heldout.png")
    Image.fromarray(natural_like(rng, 36, 36)).save(tmp_path / "small.png")
    return train, tmp_path


def config_for(train, heldout, *overrides, experiment="esrgan_x4"):
    return fit.resolve_config(experiment, overrides=[
        f"data.train={train}", f"data.validation={heldout}", "data.hr_patch_size=32",
        "data.batch_size=2", "degradation.crop_pad_size=48", "train.steps=2",
        "train.validate_every=1",
        "model.discriminator_features=8", *TINY_MODEL, *overrides] if experiment != "quick"
        else [f"data.validation={heldout}", *overrides])


@pytest.fixture
def lpips_weights(tmp_path, monkeypatch):
    trunk, linear = tmp_path / "alex.pth", tmp_path / "alex-linear.pth"
    torch_files.save(str(trunk), trunk_state("alex"), wrapper=None)
    torch_files.save(str(linear), linear_state("alex"), wrapper=None)
    monkeypatch.setenv("KERAS_SR_ALEXNET_WEIGHTS", str(trunk))
    monkeypatch.setenv("KERAS_SR_LPIPS_LINEAR_WEIGHTS", str(linear))


def test_a_gan_run_validates_with_niqe_and_lpips(folders, lpips_weights):
    train, root = folders
    config = config_for(train, root / "heldout.png")
    run_dir = root / "gan"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                     log=lambda m: None) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["heldout_niqe_model"] > 0 and summary["heldout_lpips_model"] > 0
    assert summary["best_metric"] == "psnr_y"

    import tensorflow as tf

    tags = {value.tag for path in (run_dir / "tensorboard").iterdir()
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}
    assert {"validation/niqe", "validation/lpips", "validation/psnr_y"} <= tags


def test_a_gan_run_without_lpips_weights_says_so_once(folders, tmp_path, monkeypatch):
    train, root = folders
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "nothing"))
    monkeypatch.delenv("KERAS_SR_ALEXNET_WEIGHTS", raising=False)
    notes = []
    validation = fit.make_validation(config_for(train, root / "heldout.png"), notes.append)
    assert validation.extra == ("niqe",)
    assert len(notes) == 1 and "validation without LPIPS" in notes[0]


def test_best_metric_chooses_the_saved_generator(folders, monkeypatch):
    train, root = folders
    config = config_for(train, root / "heldout.png", "train.best_metric=niqe",
                        experiment="rrdb_psnr_x4")
    run_dir = root / "run"
    config = fit.prepare_run_dir(str(run_dir), config)
    run = fit.build_run(config, str(run_dir), log=lambda m: None)
    reporter = loop.Reporter(run, fit.make_validation(config), lambda m: None)
    best = run_dir / "generator_best.keras"
    sequence = iter([{"psnr_y": 20.0, "ssim_y": 0.5, "niqe": 5.0},
                     {"psnr_y": 25.0, "ssim_y": 0.6, "niqe": 6.0},  # better PSNR, worse NIQE
                     {"psnr_y": 19.0, "ssim_y": 0.4, "niqe": 4.0}])
    sheet = np.zeros((8, 8, 3), np.uint8)
    monkeypatch.setattr(reporter, "held_out", lambda: (next(sequence), sheet))
    reporter.validate(1)
    first = best.stat().st_mtime_ns
    reporter.validate(2)
    assert best.stat().st_mtime_ns == first and float(run.checkpoints.best_score.numpy()) == -5
    reporter.validate(3)
    assert float(run.checkpoints.best_score.numpy()) == -4
    reporter.writer.close()


def test_a_best_metric_that_cannot_be_computed_is_refused(folders, tmp_path, monkeypatch):
    train, root = folders
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "nothing"))
    monkeypatch.delenv("KERAS_SR_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: (_ for _ in ()).throw(
        OSError("offline")))
    with pytest.raises(config_lib.ConfigError, match="train.best_metric: .*alexnet"):
        fit.make_validation(config_for(train, root / "heldout.png",
                                       "train.best_metric=lpips"))
    with pytest.raises(config_lib.ConfigError, match="data.validation: NIQE needs"):
        fit.make_validation(config_for(train, root / "small.png", "train.best_metric=niqe"))
    with pytest.raises(config_lib.ConfigError, match="train.best_metric: one of"):
        config_for(train, root / "heldout.png", "train.best_metric=fid")


def test_a_gan_run_with_the_unet_discriminator(folders):
    # Real-ESRGAN's discriminator: per-pixel logits, standard GAN loss (its recipe's).
    train, root = folders
    config = config_for(train, root / "heldout.png", "model.discriminator=unet_sn",
                        "loss.adversarial=standard", "loss.adversarial_weight=0.1",
                        "loss.pixel_weight=1.0", "train.best_metric=niqe")
    run_dir = root / "unet"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                     log=lambda m: None) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < summary["last_losses"]["d_real"] < 1 and summary["heldout_niqe_model"] > 0
    assert (run_dir / "generator_best.keras").is_file()
    with pytest.raises(config_lib.ConfigError, match="unet_sn discriminator needs a multiple "
                                                     "of 8"):
        config_for(train, root / "heldout.png", "model.discriminator=unet_sn",
                   "data.hr_patch_size=36")


def test_realesrnet_trains_on_real_degradations_and_resumes(folders):
    train, root = folders
    config = config_for(train, root / "heldout.png", "train.steps=2",
                        "train.checkpoint_every=1", "train.ema_decay=0.9",
                        experiment="realesrnet_x4")
    assert config.data.degradation == "realesrgan"
    run_dir = root / "realesrnet"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), log=lambda m: None) == 0
    longer = fit.prepare_run_dir(str(run_dir), config_for(
        train, root / "heldout.png", "train.steps=3", "train.checkpoint_every=1",
        "train.ema_decay=0.9", experiment="realesrnet_x4"))
    messages = []
    assert fit.train(longer, str(run_dir), log=messages.append) == 0
    assert any("resuming" in message and "step 2" in message for message in messages)
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3


def test_the_fine_tuning_command_starts_from_the_preset(folders, fake_package):
    # README: realesrgan_x4 --init-from realesrgan-x4plus --set data.train=my_photos/ (here
    # with the stand-in package's tiny x4plus, so the model size matches it).
    from tests.convert.test_ncnn import TINY_RRDB

    train, root = folders
    config = config_for(train, root / "heldout.png", "train.init_from=realesrgan-x4plus",
                        f"model.num_blocks={TINY_RRDB['num_blocks']}",
                        f"model.num_features={TINY_RRDB['num_features']}",
                        f"model.growth_channels={TINY_RRDB['growth_channels']}",
                        "train.steps=1", experiment="realesrgan_x4")
    run_dir = root / "mine"
    fit.prepare_run_dir(str(run_dir), config)
    messages = []
    assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                     log=messages.append) == 0
    assert any("initialised from realesrgan-x4plus" in message for message in messages)


def test_realesrgan_on_the_bundled_photos_checkpoints_and_resumes(tmp_path):
    """The GAN stage end to end with tiny networks: the U-Net discriminator, the five-layer
    perceptual loss (a tiny extractor), sharpened targets, EMA and real degradations, on three
    of the package's photos, held out on the fourth; stopped after 2 steps and resumed to 3."""
    import shutil
    from importlib import resources

    samples = resources.files("keras_sr.data") / "samples"
    train = tmp_path / "photos"
    train.mkdir()
    for name in ("astronaut.png", "coffee.png", "rocket.jpg"):
        shutil.copy(str(samples / name), train / name)
    run_dir = tmp_path / "run"

    def run(steps):
        config = config_for(train, samples / "chelsea.png", f"train.steps={steps}",
                            "train.checkpoint_every=1", experiment="realesrgan_x4")
        config = fit.prepare_run_dir(str(run_dir), config)
        messages = []
        assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                         log=messages.append) == 0
        return config, messages

    config, _ = run(2)
    assert (config.model.discriminator, config.data.degradation, config.train.ema_decay) == \
        ("unet_sn", "realesrgan", 0.999)
    assert {path.name for path in run_dir.iterdir()} >= {"checkpoints", "generator_last.keras",
                                                        "summary.json"}
    _, messages = run(3)
    assert any("resuming" in message and "step 2" in message for message in messages)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3 and np.isfinite(summary["last_losses"]["d_loss"])


def test_realesrgan_recipe_runs_with_sharpened_targets(folders, monkeypatch):
    train, root = folders
    config = config_for(train, root / "heldout.png", experiment="realesrgan_x4")
    assert (config.model.discriminator, config.loss.perceptual) == ("unet_sn", "vgg19_realesrgan")
    run_dir = root / "realesrgan"
    fit.prepare_run_dir(str(run_dir), config)
    built = {}
    build_trainer = fit.build_trainer

    def keep(*args, **kwargs):
        built["trainer"] = build_trainer(*args, **kwargs)
        return built["trainer"]

    monkeypatch.setattr(fit, "build_trainer", keep)
    assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                     log=lambda m: None) == 0
    trainer = built["trainer"]
    # train_realesrgan_x4plus.yml: l1_gt_usm and percep_gt_usm true, gan_gt_usm false.
    assert (trainer.pixel_sharpened, trainer.perceptual_sharpened,
            trainer.adversarial_sharpened) == (True, True, False)
    with pytest.raises(config_lib.ConfigError, match="loss.pixel_sharpened: needs "
                                                     "data.hr_patch_size above 25, got 24"):
        config_for(train, root / "heldout.png", "data.hr_patch_size=24",
                   experiment="realesrnet_x4")


@pytest.mark.parametrize("pixel,perceptual,adversarial", [(True, False, False),
                                                          (False, True, True)])
def test_each_sharpened_key_moves_only_its_own_term(pixel, perceptual, adversarial):
    """Real-ESRGAN's l1_gt_usm / percep_gt_usm / gan_gt_usm: each key makes its own term
    compare with the unsharp-masked HR (the discriminator's real images, for the last), and
    leaves the others on the HR as it is."""
    import keras

    from keras_sr.data.real_degradations import unsharp_mask
    from keras_sr.models import RRDBNet
    from keras_sr.trainers import SRGAN
    from tests.helpers import random_images

    generator = RRDBNet(num_blocks=1, num_features=8, growth_channels=4)
    discriminator = keras.Sequential([keras.Input((32, 32, 3)),
                                      keras.layers.Conv2D(1, 3, padding="same",
                                                          kernel_initializer="random_normal")])
    # Squared error on the pixels stands in for the VGG loss: what matters is its target.
    trainer = SRGAN(generator, discriminator, keras.losses.MeanSquaredError(), scale=4,
                    pixel_weight=1.0, pixel_loss=keras.losses.MeanAbsoluteError(),
                    pixel_sharpened=pixel, perceptual_sharpened=perceptual,
                    adversarial_sharpened=adversarial)
    # Rate 0: the networks after the step are the ones the step ran.
    trainer.compile(g_optimizer=keras.optimizers.SGD(0.0),
                    d_optimizer=keras.optimizers.SGD(0.0))
    lr, hr = random_images((2, 8, 8, 3), seed=1), random_images((2, 32, 32, 3), seed=2)
    logs = trainer.train_on_batch(lr, hr, return_dict=True)
    sr = keras.ops.convert_to_numpy(generator(lr, training=True))
    targets = {False: hr, True: unsharp_mask(hr).numpy()}

    def d_real(images):
        logits = keras.ops.convert_to_numpy(discriminator(images, training=True))
        return (1 / (1 + np.exp(-logits))).mean()

    for name, sharpened, measure in (
            ("pixel_loss", pixel, lambda target: np.abs(sr - target).mean()),
            ("perceptual_loss", perceptual, lambda target: np.square(sr - target).mean()),
            ("d_real", adversarial, d_real)):
        expected, other = measure(targets[sharpened]), measure(targets[not sharpened])
        assert abs(expected - other) > 1e-4 * abs(expected), name  # 10x the tolerance
        assert logs[name] == pytest.approx(expected, rel=1e-5), name


def test_a_run_written_with_sharpen_targets_still_reads_back():
    """Runs written before the three keys saved `loss.sharpen_targets` (pixel and perceptual
    against the sharpened HR) in config.json; they read back as the two keys and resume."""
    saved = config_lib.to_dict(config_lib.merge(config_lib.ExperimentConfig(),
                                                {"data": {"train": ["photos"]}}))
    del saved["loss"]["pixel_sharpened"], saved["loss"]["perceptual_sharpened"]
    saved["loss"]["sharpen_targets"] = True
    config = config_lib.from_dict(saved)
    assert (config.loss.pixel_sharpened, config.loss.perceptual_sharpened,
            config.loss.adversarial_sharpened) == (True, True, False)


@pytest.mark.parametrize("value,accepted", [("true", True), ("false", False), ("yes", None),
                                            ("1", None)])
def test_a_boolean_key_takes_true_or_false_only(folders, value, accepted):
    train, root = folders
    if accepted is None:
        with pytest.raises(config_lib.ConfigError,
                           match="loss.adversarial_sharpened must be true or false"):
            config_for(train, root / "heldout.png", f"loss.adversarial_sharpened={value}")
    else:
        config = config_for(train, root / "heldout.png", f"loss.adversarial_sharpened={value}")
        assert config.loss.adversarial_sharpened is accepted


def test_an_unknown_degradation_is_named(folders):
    train, root = folders
    with pytest.raises(config_lib.ConfigError, match="data.degradation: bicubic or realesrgan"):
        config_for(train, root / "heldout.png", "data.degradation=jpeg")


def test_the_degradation_is_configured_key_by_key(folders, monkeypatch):
    train, root = folders
    config = config_for(train, root / "heldout.png", "degradation.second.noise_sigma=[1,10]",
                        "degradation.first.kernel.sinc_probability=0",
                        experiment="realesrnet_x4")
    assert config.degradation.second.noise_sigma == (1.0, 10.0)
    assert config.degradation.first.kernel.sinc_probability == 0.0
    assert config.degradation.first.noise_sigma == (1.0, 30.0)  # the recipe's, untouched
    # training.fit hands exactly this to the pipeline.
    from keras_sr.data import pipeline

    seen = {}
    original = pipeline.training_dataset

    def spy(*args, **kwargs):
        seen["degradation"] = kwargs.get("degradation")
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "training_dataset", spy)
    run_dir = root / "configured"
    config = fit.prepare_run_dir(str(run_dir), config)
    run = fit.build_run(config, str(run_dir), log=lambda m: None)
    fit.data_stream(run)
    assert seen["degradation"] == config.degradation


@pytest.mark.parametrize("override,message", [
    ("degradation.first.kernel.type_probabilities=[0.5,0.5]",
     "degradation.first.kernel.type_probabilities: must be 6 probabilities summing to 1"),
    ("degradation.second.resize_range=[1.5,0.3]",
     "degradation.second.resize_range: must be \\[low, high\\] with low <= high"),
    ("degradation.second.resize_range=[1.1,1.3]", "must contain 1"),
    ("degradation.first.kernel.sizes=[7,8]", "degradation.first.kernel.sizes: must be odd"),
    ("degradation.first.jpeg_quality=[30,120]",
     "degradation.first.jpeg_quality: must lie in \\[1, 100\\]"),
    ("degradation.final_sinc_probability=2", "must be a probability in \\[0, 1\\], got 2"),
    ("degradation.first.noise=3", "unknown configuration key 'degradation.first.noise'"),
])
def test_bad_degradation_values_are_named(folders, override, message):
    train, root = folders
    with pytest.raises(config_lib.ConfigError, match=message):
        config_for(train, root / "heldout.png", override, experiment="realesrnet_x4")


def test_a_crop_smaller_than_the_patch_is_named(folders, tmp_path):
    from keras_sr.data.pipeline import training_dataset
    from keras_sr.data.real_degradations import DegradationOptions
    from keras_sr.data.sources import folder_source

    train, root = folders
    with pytest.raises(config_lib.ConfigError, match="degradation.crop_pad_size: must be a "
                       "multiple of the scale 4, at least the HR patch size 32 and above 25, "
                       "got 30"):
        config_for(train, root / "heldout.png", "degradation.crop_pad_size=30",
                   experiment="realesrnet_x4")
    with pytest.raises(ValueError, match="degradation.crop_pad_size must be a multiple of "
                       "the scale 4, at least the HR patch size 32 and above 25, got 30"):
        training_dataset(folder_source(str(train), scale=4), 32, 4, 2,
                         degradation=DegradationOptions(crop_pad_size=30))
