import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.losses.test_perceptual import tiny_extractor
from tests.training.test_evaluate import natural_folder, natural_like
from training import config as config_lib
from training import fit, loop
from training.experiments import EXPERIMENTS

TINY_MODEL = ["model.num_blocks=1", "model.num_features=8", "model.growth_channels=4"]


@pytest.fixture
def image_folder(tmp_path, rng):
    folder = natural_folder(tmp_path / "hr", rng, 3, 40, 44, stem="train")
    Image.fromarray(natural_like(rng, 36, 36)).save(tmp_path / "heldout.png")
    return folder


def tiny_config(image_folder, *overrides, experiment="rrdb_psnr_x4"):
    return fit.resolve_config(experiment, overrides=[
        f"data.train={image_folder}", f"data.validation={image_folder.parent / 'heldout.png'}",
        "data.hr_patch_size=32", "data.batch_size=2", "train.steps=6", "train.log_every=2",
        "train.checkpoint_every=3", "train.validate_every=3", *TINY_MODEL, *overrides])


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_named_experiment_builds_and_validates(name):
    overrides = [] if name == "quick" else ["data.train=DIV2K_train_HR"]
    config = fit.resolve_config(name, overrides=overrides)
    assert config.name == name
    generator = fit.build_generator(dataclasses.replace(
        config.model, num_blocks=1, num_features=8, growth_channels=4))
    assert generator.scale == config.model.scale
    if config.model.discriminator != "none":
        assert fit.build_discriminator(config).input_shape[1] == config.data.hr_patch_size


def test_paper_values_of_the_recipes():
    esrgan = EXPERIMENTS["esrgan_x4"]()
    assert (esrgan.loss.perceptual, esrgan.loss.adversarial) == ("vgg19_54_before_relu",
                                                                 "relativistic")
    assert (esrgan.loss.adversarial_weight, esrgan.loss.pixel_weight) == (5e-3, 1e-2)
    assert esrgan.g_optimizer.milestones == (50_000, 100_000, 200_000, 300_000)
    srgan = EXPERIMENTS["srgan_x4"]()
    assert srgan.loss.perceptual_feature_scale == pytest.approx(1 / 12.75)
    assert srgan.loss.adversarial_weight == 1e-3
    assert EXPERIMENTS["rrdb_psnr_x4"]().g_optimizer.beta_2 == 0.99


def test_precedence_experiment_then_yaml_then_set(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("data:\n  batch_size: 8\n  train: [a, b]\ntrain:\n  steps: 50\n")
    config = fit.resolve_config("rrdb_psnr_x4", str(yaml_file), ["train.steps=70"])
    assert (config.data.batch_size, config.data.train, config.train.steps) == (8, ("a", "b"), 70)
    assert config.data.hr_patch_size == 128  # from the experiment


@pytest.mark.parametrize("override,message", [
    ("train.stepz=5", "unknown configuration key 'train.stepz'"),
    ("trian.steps=5", "unknown configuration key 'trian'"),
    ("train.steps=many", "train.steps must be int"),
    ("train.steps=0", "train.steps: must be at least 1"),
    ("data.hr_patch_size=90", "data.hr_patch_size: 90 is not a multiple of model.scale 4"),
    ("loss.adversarial=sometimes", "loss.adversarial"),
    ("train.steps", "--set needs section.key=value"),
    ("g_optimizer.schedule=linear", "g_optimizer.schedule: one of"),
    ("g_optimizer.warmup_steps=5000",
     r"g_optimizer.warmup_steps: 5000 is not in \[0, train.steps\) = \[0, 1800\)"),
])
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        fit.resolve_config("quick", overrides=[override])


def test_a_short_smoke_run_scales_the_experiments_warm_up():
    notes = []
    config = fit.resolve_config("quick", overrides=["train.steps=30"], log=notes.append)
    assert config.g_optimizer.warmup_steps == 100 * 30 // 1800 == 1
    assert notes == ["note: g_optimizer.warmup_steps 100 does not fit train.steps 30; scaled "
                     "to 1 (the experiment's share, 100 of 1800)"]
    # A warm-up the user chose is theirs: too long is an error naming both values.
    with pytest.raises(config_lib.ConfigError, match=r"warmup_steps: 40 is not in \[0, "
                       r"train.steps\) = \[0, 30\)"):
        fit.resolve_config("quick", overrides=["train.steps=30", "g_optimizer.warmup_steps=40"])


def test_the_readme_smoke_test_runs(tmp_path, capsys):
    """`python -m training.fit quick --set train.steps=30`, as the README gives it."""
    assert fit.main(["quick", "--set", "train.steps=30", "--output",
                     str(tmp_path / "smoke")]) == 0
    assert "scaled to 1" in capsys.readouterr().err
    assert json.loads((tmp_path / "smoke" / "summary.json").read_text())["steps"] == 30


def test_numbers_in_any_spelling():
    config = fit.resolve_config("quick", overrides=[
        "g_optimizer.learning_rate=1e-4", "train.steps=2e3", "g_optimizer.schedule=step",
        "g_optimizer.milestones=[1e3,1500]"])
    assert config.g_optimizer.learning_rate == 1e-4
    assert config.train.steps == 2000 and config.g_optimizer.milestones == (1000, 1500)
    with pytest.raises(config_lib.ConfigError, match="train.steps must be int, got 2.5"):
        fit.resolve_config("quick", overrides=["train.steps=2.5"])


def test_unknown_experiment_and_missing_data_are_named():
    with pytest.raises(config_lib.ConfigError, match="unknown experiment 'esrgan'"):
        fit.resolve_config("esrgan")
    with pytest.raises(config_lib.ConfigError, match="data.train: give exactly one"):
        fit.resolve_config("esrgan_x4")


def test_a_tiny_run_writes_everything_and_resumes(image_folder, tmp_path):
    run_dir = tmp_path / "run"
    config = fit.prepare_run_dir(str(run_dir), tiny_config(image_folder))
    messages = []
    assert fit.train(config, str(run_dir), log=messages.append) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["steps"] == 6 and saved["model"]["num_features"] == 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["seconds"] > 0
    assert {"heldout_psnr_y_bicubic", "heldout_psnr_y_model"} <= set(summary)
    assert set(summary["last_losses"]) == {"g_loss", "pixel_loss"}
    for name in ("generator_last.keras", "generator_best.keras"):
        assert (run_dir / name).is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.index")) == [
        "ckpt-3.index", "ckpt-6.index"]
    assert list((run_dir / "tensorboard").iterdir())
    assert any("validation PSNR-Y" in m for m in messages)

    # Same directory, more steps: it resumes at 6 instead of starting again.
    longer = fit.prepare_run_dir(str(run_dir), tiny_config(image_folder, "train.steps=9"))
    messages.clear()
    assert fit.train(longer, str(run_dir), log=messages.append) == 0
    assert any("resuming" in m and "step 6" in m for m in messages)
    assert any(m.startswith("3 steps (resumed at 6, now at 9) in ") for m in messages)
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 9
    # ...but another configuration in the same directory is refused.
    with pytest.raises(config_lib.ConfigError, match="data.batch_size"):
        fit.prepare_run_dir(str(run_dir), tiny_config(image_folder, "data.batch_size=4"))


def test_ema_generator_is_the_average_that_gets_saved(image_folder, tmp_path):
    import keras

    from keras_sr.models import RRDBNet

    config = tiny_config(image_folder, "train.ema_decay=0.5", "train.steps=3",
                         "train.checkpoint_every=1")
    run_dir = tmp_path / "run"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), log=lambda m: None) == 0
    assert json.loads((run_dir / "summary.json").read_text())["ema"] is True

    # Rebuild the step-2 and step-3 raw generators from the checkpoints: the saved generator is
    # 0.5 * (EMA at step 2) + 0.5 * (raw weights at step 3).
    import tensorflow as tf

    def restored(step):
        raw = RRDBNet(scale=4, num_blocks=1, num_features=8, growth_channels=4)
        ema = RRDBNet(scale=4, num_blocks=1, num_features=8, growth_channels=4)
        tf.train.Checkpoint(generator=raw, ema_generator=ema).restore(
            str(run_dir / "checkpoints" / f"ckpt-{step}")).expect_partial()
        return raw, ema

    _, ema_2 = restored(2)
    raw_3, ema_3 = restored(3)
    saved = keras.saving.load_model(run_dir / "generator_last.keras")
    for expected, average, weight, kept in zip(ema_3.get_weights(), ema_2.get_weights(),
                                               raw_3.get_weights(), saved.get_weights()):
        np.testing.assert_allclose(expected, 0.5 * average + 0.5 * weight, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_array_equal(kept, expected)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs(image_folder, tmp_path, precision):
    config = tiny_config(image_folder, f"train.precision={precision}", "train.steps=2")
    run_dir = tmp_path / precision
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), log=lambda m: None) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert np.isfinite(summary["last_losses"]["pixel_loss"])
    assert np.isfinite(summary["heldout_psnr_y_model"])


def test_an_esrgan_run_with_an_injected_feature_extractor(image_folder, tmp_path):
    config = tiny_config(image_folder, "data.train=" + str(image_folder), "train.steps=2",
                         "model.discriminator_features=8", experiment="esrgan_x4")
    run_dir = tmp_path / "gan"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                     log=lambda m: None) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["last_losses"]) >= {"d_loss", "adversarial_loss", "perceptual_loss"}


def test_missing_vgg_weights_stop_before_training(image_folder, tmp_path, monkeypatch, capsys):
    # esrgan_x4 uses torchvision's VGG19 (BasicSR's), found through this variable first.
    monkeypatch.setenv("KERAS_SR_VGG19_TORCHVISION_WEIGHTS", str(tmp_path / "nowhere.pth"))
    run_dir = tmp_path / "gan"
    status = fit.main(["esrgan_x4", "--output", str(run_dir), "--set",
                       f"data.train={image_folder}", "--set", "data.hr_patch_size=32",
                       *[item for o in TINY_MODEL for item in ("--set", o)]])
    assert status == 2
    assert "nowhere.pth" in capsys.readouterr().err
    assert not (run_dir / "checkpoints").exists()


def test_init_from_refuses_another_architecture(image_folder, tmp_path):
    from keras_sr.models import SRResNet

    other = tmp_path / "srresnet.keras"
    SRResNet(num_blocks=1, num_features=8).save(other)
    config = tiny_config(image_folder, f"train.init_from={other}")
    fit.prepare_run_dir(str(tmp_path / "run"), config)
    with pytest.raises(config_lib.ConfigError, match="another architecture"):
        fit.train(config, str(tmp_path / "run"), log=lambda m: None)


def test_the_compact_generator_fine_tunes_from_its_preset(fake_package, image_folder,
                                                         tmp_path):
    config = tiny_config(image_folder, "model.generator=srvgg_compact", "model.num_blocks=2",
                         "model.num_features=8", "train.steps=2",
                         "train.init_from=realesr-animevideov3-x4")
    run_dir = tmp_path / "compact"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), log=lambda m: None) == 0
    assert (run_dir / "generator_last.keras").is_file()


def test_init_from_a_preset_fine_tunes_the_published_weights(fake_package):
    from keras_sr.models import RRDBNet

    generator = RRDBNet(num_blocks=2, num_features=8, growth_channels=4)
    fit.load_initial_generator("realesrgan-x4plus", generator)
    for expected, actual in zip(fake_package["realesrgan-x4plus"].get_weights(),
                                generator.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_a_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(image_folder,
                                                                              tmp_path):
    config = tiny_config(image_folder, "g_optimizer.learning_rate=1e30",
                         "train.checkpoint_every=1", "train.steps=20")
    run_dir = tmp_path / "run"
    fit.prepare_run_dir(str(run_dir), config)
    messages = []
    assert fit.train(config, str(run_dir), log=messages.append) == loop.EXIT_NON_FINITE
    stop = next(m for m in messages if "non-finite loss" in m)
    step = int(stop.split("at step ")[1].split()[0])
    assert 1 < step < 20
    assert f"ckpt-{step - 1}" in stop  # the last good checkpoint is named and still there
    assert (run_dir / "checkpoints" / f"ckpt-{step - 1}.index").is_file()
    assert not (run_dir / "checkpoints" / f"ckpt-{step}.index").exists()


def latest_checkpoint_step(run_dir):
    index = run_dir / "checkpoints" / "checkpoint"
    if not index.exists():
        return 0
    first = index.read_text().splitlines()[0]
    return int(first.rsplit("ckpt-", 1)[1].rstrip('"'))


def start_run(image_folder, run_dir, steps):
    overrides = [f"data.train={image_folder}", "data.hr_patch_size=32", "data.batch_size=2",
                 f"train.steps={steps}", "train.checkpoint_every=2", "train.log_every=1000",
                 *TINY_MODEL]
    command = [sys.executable, "-m", "training.fit", "rrdb_psnr_x4", "--output", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir, at_least, process, timeout=240):
    deadline = time.time() + timeout
    while latest_checkpoint_step(run_dir) < at_least:
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.5)


@pytest.mark.slow
def test_sigkill_resumes_losing_only_the_steps_since_the_last_checkpoint(image_folder,
                                                                         tmp_path):
    run_dir = tmp_path / "run"
    process = start_run(image_folder, run_dir, steps=100000)
    wait_for_checkpoint(run_dir, 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    saved = latest_checkpoint_step(run_dir)
    assert saved >= 4
    resumed = start_run(image_folder, run_dir, steps=saved + 2)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert f"resuming {run_dir} from step {saved}" in out
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == saved + 2


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(image_folder, tmp_path):
    run_dir = tmp_path / "run"
    process = start_run(image_folder, run_dir, steps=100000)
    wait_for_checkpoint(run_dir, 2, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    stopped_at = int(out.split("stopped by signal")[1].split("at step ")[1].split(";")[0])
    # Said as soon as the signal came, from another thread, while a step was still running.
    assert "\nSIGTERM: finishing step " in out
    assert latest_checkpoint_step(run_dir) == stopped_at
    assert os.path.isfile(run_dir / "generator_last.keras")
    assert np.isfinite(json.loads((run_dir / "summary.json").read_text())["seconds"])


def test_building_a_run_and_the_loop_are_separate_parts(image_folder, tmp_path):
    config = tiny_config(image_folder, "train.steps=3", "train.checkpoint_every=3")
    run = fit.build_run(config, str(tmp_path / "run"), log=lambda message: None)
    # rrdb_psnr_x4 keeps an EMA (0.999, as BasicSR), which is what is validated and saved.
    assert run.start_step == 0 and run.served is run.ema_generator is not None
    source, iterator = fit.data_stream(run)
    result = loop.train_loop(run, iterator, source, validation=None, log=lambda message: None)
    assert (result.status, result.step) == (0, 3)
    assert set(result.last_losses) == {"g_loss", "pixel_loss"}
    assert run.checkpoints.latest.endswith("ckpt-3")
    resumed = fit.build_run(config, str(tmp_path / "run"), log=lambda message: None)
    assert resumed.start_step == 3
    for saved, restored in zip(run.generator.get_weights(), resumed.generator.get_weights()):
        np.testing.assert_array_equal(saved, restored)


@pytest.mark.parametrize("scaled", [True, False])
def test_float16_training_scales_the_loss_so_small_gradients_survive(scaled):
    # A loss whose gradient at the output is ~1e-4 / 12288 per pixel: below float16's smallest
    # subnormal (6e-8), so unscaled float16 back-propagation gives exact zeros; the optimizer
    # training.fit builds for float16 scales the loss (2^15 to start) and the step moves the
    # weights. The unscaled case is the control: it shows the check can fail.
    import keras

    from keras_sr.trainers import PSNRTrainer, PyTorchAdam
    from tests.trainers.test_trainers import batch

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        generator = fit.build_generator(config_lib.ModelConfig(
            generator="rrdbnet", scale=4, num_blocks=1, num_features=8, growth_channels=4))
        trainer = PSNRTrainer(generator, 4, pixel_weight=1e-4)
        optimizer = fit.build_optimizer(config_lib.OptimizerConfig(learning_rate=1e-3),
                                        generator.trainable_variables, "mixed_float16", 10) \
            if scaled else PyTorchAdam(1e-3)
        trainer.compile(g_optimizer=optimizer)
        before = generator.get_weights()
        trainer.train_on_batch(*batch())
        moved = [not np.array_equal(a, b) for a, b in zip(before, generator.get_weights())]
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(moved) if scaled else not any(moved)


def test_the_recipes_follow_the_reference_options(image_folder, tmp_path, monkeypatch):
    # BasicSR's train_RRDBNet_PSNR_x4.yml / train_ESRGAN_x4.yml keep an EMA at 0.999;
    # Real-ESRGAN's train_realesrnet / realesrgan_x4plus.yml flip but do not rotate
    # (use_rot: False) and train 12 patches per GPU on 4 GPUs.
    for name in ("rrdb_psnr_x4", "esrgan_x4"):
        assert EXPERIMENTS[name]().train.ema_decay == 0.999, name
    for name in ("realesrnet_x4", "realesrgan_x4"):
        data = EXPERIMENTS[name]().data
        assert (data.flip, data.rotate, data.batch_size) == (True, False, 48), name
    # The keys reach the pipeline.
    from keras_sr.data import pipeline

    seen = {}
    real = pipeline.training_dataset

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "training_dataset", spy)
    config = tiny_config(image_folder, "data.rotate=false", "train.steps=1")
    run = fit.build_run(config, str(tmp_path / "run"), log=lambda message: None)
    fit.data_stream(run)
    assert (seen["flip"], seen["rotate"]) == (True, False)


def test_the_progress_line_reads_times_in_seconds_then_as_a_clock():
    assert [loop.duration(seconds) for seconds in (0.4, 41.4, 59.6, 123, 3723)] == [
        "0 s", "41 s", "1:00", "2:03", "1:02:03"]
