"""A resumed run continues as if never stopped: every variable restored exactly, the best
validation PSNR kept, the learning-rate schedule unchanged, and the time of every segment."""

import dataclasses
import json

import numpy as np
import pytest

from tests.training.test_fit import image_folder, tiny_config  # noqa: F401 (fixture)
from training import config as config_lib
from training import fit, loop


def state(run):
    """Every variable a run resumes from, by name."""
    values = {"step": run.checkpoints.step.numpy(),
              "best_score": run.checkpoints.best_score.numpy()}
    trainer = run.trainer
    networks = {"generator": trainer.generator, "ema": trainer.ema_generator}
    for name, network in networks.items():
        for index, weight in enumerate(network.weights):
            values[f"{name}/{index}/{weight.path}"] = np.array(weight.numpy())
    for name, optimizer in run.optimizers.items():
        for index, variable in enumerate(optimizer.variables):
            values[f"{name}/{index}/{variable.path}"] = np.array(variable.numpy())
    return values


def test_a_resumed_run_restores_every_variable_exactly(image_folder, tmp_path,  # noqa: F811
                                                         monkeypatch):
    config = tiny_config(image_folder, "train.ema_decay=0.9", "train.steps=4",
                         "train.checkpoint_every=4", "train.validate_every=2")
    run_dir = tmp_path / "run"
    config = fit.prepare_run_dir(str(run_dir), config)
    saved = {}
    finish = loop.finish

    def keep_state(run, *args, **kwargs):
        saved.update(state(run))
        saved["validated"] = dict(args[3].validated)
        return finish(run, *args, **kwargs)

    monkeypatch.setattr(loop, "finish", keep_state)
    assert fit.train(config, str(run_dir), log=lambda m: None) == 0
    validated = {step: values["psnr_y"] for step, values in saved.pop("validated").items()}
    assert saved["best_score"] == max(validated.values()) and saved["step"] == 4
    assert any(key.startswith("g_optimizer/") and "iteration" in key for key in saved)

    longer = fit.prepare_run_dir(str(run_dir), dataclasses.replace(
        config, train=dataclasses.replace(config.train, steps=6, schedule_steps=0)))
    run = fit.build_run(longer, str(run_dir), log=lambda m: None)
    restored = state(run)
    assert restored.keys() == saved.keys()
    for key, value in saved.items():
        np.testing.assert_array_equal(restored[key], value, err_msg=key)

    # The first validation after resuming compares with the run's best so far: the step-4
    # weights again score validated[4] <= best, so generator_best.keras is not rewritten.
    best = run_dir / "generator_best.keras"
    before = best.stat().st_mtime_ns
    reporter = loop.Reporter(run, _validation(longer), lambda m: None)
    reporter.validate(4)
    reporter.writer.close()
    assert reporter.validated[4]["psnr_y"] == pytest.approx(validated[4], abs=1e-6)
    assert best.stat().st_mtime_ns == before


def _validation(config):
    from training.validation import Validation

    return Validation(config.data.validation, config.model.scale)



def test_resuming_keeps_the_schedule_and_records_each_segment(image_folder,  # noqa: F811
                                                                tmp_path):
    config = tiny_config(image_folder, "g_optimizer.schedule=cosine", "g_optimizer.milestones=[]",
                         "train.steps=10")
    run_dir = tmp_path / "run"
    fit.prepare_run_dir(str(run_dir), config)
    # The run stopped at step 4 (as after SIGINT), with its schedule set for 10 steps.
    stopped = dataclasses.replace(config, train=dataclasses.replace(
        config.train, steps=4, schedule_steps=10))
    assert fit.train(stopped, str(run_dir), log=lambda m: None) == 0

    resumed = fit.prepare_run_dir(str(run_dir), tiny_config(
        image_folder, "g_optimizer.schedule=cosine", "g_optimizer.milestones=[]",
        "train.steps=20"))
    assert resumed.train.schedule_steps == 10  # not 20: the rate does not jump

    def rate_at(run, step):
        optimizer = run.optimizers["g_optimizer"]
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    import keras

    rate = config.g_optimizer.learning_rate
    expected = keras.optimizers.schedules.CosineDecay(rate, 10)
    run = fit.build_run(resumed, str(run_dir), log=lambda m: None)
    for step in (4, 5, 9, 12):
        assert rate_at(run, step) == pytest.approx(float(expected(step)), rel=1e-6, abs=1e-12)
    # Asked for explicitly, the cosine stretches over the new length.
    stretched = fit.prepare_run_dir(str(run_dir), tiny_config(
        image_folder, "g_optimizer.schedule=cosine", "g_optimizer.milestones=[]",
        "train.steps=20", "train.schedule_steps=20"))
    assert stretched.train.schedule_steps == 20
    assert fit.train(stretched, str(run_dir), log=lambda m: None) == 0

    summary = json.loads((run_dir / "summary.json").read_text())
    assert [segment["steps"] for segment in summary["segments"]] == [[0, 4], [4, 20]]
    assert summary["seconds"] == pytest.approx(sum(s["seconds"] for s in summary["segments"]))
    assert all(segment["seconds"] > 0 for segment in summary["segments"])


def test_a_perceptual_loss_without_a_discriminator_is_trained(image_folder,  # noqa: F811
                                                              tmp_path):
    from tests.losses.test_perceptual import tiny_extractor

    # SRGAN's SRResNet-VGG54 row: the VGG loss alone, no discriminator.
    config = tiny_config(image_folder, "loss.perceptual=vgg19_54_after_relu",
                         "loss.perceptual_weight=1.0", "loss.pixel_weight=0.0", "train.steps=2")
    run_dir = tmp_path / "vgg54"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), feature_extractor_factory=tiny_extractor,
                     log=lambda m: None) == 0
    losses = json.loads((run_dir / "summary.json").read_text())["last_losses"]
    assert losses["perceptual_loss"] > 0 and losses["g_loss"] == pytest.approx(
        losses["perceptual_loss"])
    with pytest.raises(config_lib.ConfigError, match="loss.perceptual: is vgg19_54_after_relu "
                                                      "but loss.perceptual_weight is 0.0"):
        tiny_config(image_folder, "loss.perceptual=vgg19_54_after_relu")
    with pytest.raises(config_lib.ConfigError, match="loss.pixel_weight: is 0 with no"):
        tiny_config(image_folder, "loss.pixel_weight=0")
