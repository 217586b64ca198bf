"""`python -m training.fit` against bad data, bad options and damaged runs: one line on stderr
and status 2 before anything is built (no run directory left behind), a resume that survives a
corrupt checkpoint, and skip counts that add up."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.robustness import corpus
from training import fit, loop

TINY = ["data.hr_patch_size=32", "data.batch_size=2", "model.num_blocks=1",
        "model.num_features=8", "model.growth_channels=4", "train.log_every=1"]


def fit_main(capsys, data, output, *overrides, config=None, init_from=None):
    argv = ["rrdb_psnr_x4", "--output", str(output), "--set", f"data.train={data}"]
    if init_from:
        argv += ["--init-from", str(init_from)]
    for override in (*TINY, *overrides):
        argv += ["--set", override]
    if config:
        argv += ["--config", str(config)]
    try:
        status = fit.main(argv)
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def photos(folder, count, rng, size=40):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3)).astype(np.uint8)).save(
            folder / f"photo{index}.png")
    return folder


@pytest.mark.parametrize("case", ["empty folder", "missing folder", "only junk",
                                  "only a truncated PNG", "output is a file", "binary config",
                                  "config is a folder", "unreadable validation image",
                                  "garbage init-from"])
def test_bad_data_and_options_stop_before_anything_is_built(tmp_path, capsys, case):
    rng = np.random.default_rng(0)
    data, output, config, init_from = tmp_path / "data", tmp_path / "run", None, None
    overrides = ["train.steps=2"]
    data.mkdir()
    if case == "missing folder":
        data = tmp_path / "nowhere"
    elif case == "only junk":
        for name in ("a.png", "b.jpg", "c.bmp"):
            (data / name).write_bytes(b"junk")
    elif case == "only a truncated PNG":
        good = corpus.encoded(rng.integers(0, 256, (40, 40, 3)), "PNG")
        (data / "cut.png").write_bytes(good[:len(good) // 2])
    elif case != "empty folder":
        photos(data, 2, rng)
    if case == "output is a file":
        output.write_text("a file")
    elif case == "binary config":
        config = tmp_path / "run.yaml"
        config.write_bytes(bytes(range(256)))
    elif case == "config is a folder":
        config = tmp_path
    elif case == "unreadable validation image":
        (tmp_path / "heldout.png").write_bytes(b"")
        overrides.append(f"data.validation={tmp_path / 'heldout.png'}")
    elif case == "garbage init-from":
        init_from = tmp_path / "g.keras"
        init_from.write_bytes(b"garbage")
    message = {"empty folder": "no image files", "missing folder": "no such image folder",
               "only junk": "none of the 3 images", "output is a file": "is a file",
               "only a truncated PNG": "no training pair could be made: 1 of 1 images skipped",
               "binary config": "is not a text (UTF-8 YAML) file",
               "config is a folder": "is a folder, not a YAML file",
               "unreadable validation image": "data.validation: cannot read image",
               "garbage init-from": "g.keras is not a .keras model file"}[case]
    before = corpus.snapshot(tmp_path)
    status, _, err = fit_main(capsys, data, output, *overrides, config=config,
                              init_from=init_from)
    assert status == 2 and message in err, err
    assert err.strip().count("\n") == 0 and err.startswith("python -m training.fit: error: "), err
    assert corpus.snapshot(tmp_path) == before
    assert case == "output is a file" or not output.exists()


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    data = photos(tmp_path / "data", 3, np.random.default_rng(0))
    run = tmp_path / "run"
    status, _, _ = fit_main(capsys, data, run, "train.steps=4", "train.checkpoint_every=2")
    assert status == 0
    latest = run / "checkpoints" / "ckpt-4.data-00000-of-00001"
    latest.write_bytes(latest.read_bytes()[:100])
    status, out, err = fit_main(capsys, data, run, "train.steps=6",
                                "train.checkpoint_every=2")
    assert status == 0, err
    said = out + err
    assert "checkpoint" in said and "ckpt-4 cannot be read" in said and \
        "resuming from" in said and "ckpt-2 instead" in said, said
    assert "from step 2" in said
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    # Every checkpoint damaged: a clear error naming them, and the run directory kept.
    for path in (run / "checkpoints").glob("ckpt-*.data-*"):
        path.write_bytes(b"")
    status, _, err = fit_main(capsys, data, run, "train.steps=8", "train.checkpoint_every=2")
    assert status == 2 and "no readable checkpoint" in err and "ckpt-6" in err
    assert (run / "generator_last.keras").is_file()


def test_resuming_with_fewer_steps_than_reached_is_refused(tmp_path, capsys):
    data = photos(tmp_path / "data", 3, np.random.default_rng(0))
    run = tmp_path / "run"
    assert fit_main(capsys, data, run, "train.steps=3")[0] == 0
    before = corpus.snapshot(run)
    status, _, err = fit_main(capsys, data, run, "train.steps=2")
    assert status == 2
    assert "train.steps: 2 is below step 3, which" in err and "has already reached" in err
    assert corpus.snapshot(run) == before


def test_the_skip_count_includes_files_that_fail_only_when_decoded(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = photos(tmp_path / "data", 3, rng)
    (data / "junk.png").write_bytes(b"junk")
    good = corpus.encoded(rng.integers(0, 256, (40, 40, 3)), "PNG")
    (data / "cut.png").write_bytes(good[:len(good) // 2])  # its header reads fine
    status, out, err = fit_main(capsys, data, tmp_path / "run", "train.steps=8",
                                "data.cache=no")
    assert status == 0
    assert "training data: 2 of 5 images skipped" in out + err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sorted(os.path.basename(path) for path in summary["skipped_images"]) == [
        "cut.png", "junk.png"]


def test_saved_generators_appear_whole(tmp_path, monkeypatch):
    """generator_best / generator_last: a save that fails halfway keeps the previous file."""
    import keras

    from keras_sr.models import SRVGGNetCompact

    model = SRVGGNetCompact(num_convs=1, num_features=4)
    target = tmp_path / "generator_best.keras"
    loop.save_model(model, str(target))
    previous = target.read_bytes()

    def broken_save(self, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        loop.save_model(model, str(target))
    assert target.read_bytes() == previous
    assert sorted(os.listdir(tmp_path)) == ["generator_best.keras"]
