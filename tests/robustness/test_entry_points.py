"""Every entry point against bad input: one table-driven test each, over a corpus made in the
test. Each case asserts the exit status, the message, that the other inputs were still
processed, and that no file the command was not asked to write changed (hashes before and
after)."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from export import client, saved_model, tflite
from keras_sr import cli
from keras_sr.data import make_tfrecords
from keras_sr.models import SRVGGNetCompact
from tests.convert.test_ncnn import randomized
from tests.export.serving_double import ServingDouble
from tests.robustness import corpus
from training import evaluate, interpolate


def run(main, argv, capsys):
    """`(status, stdout, stderr)` of an entry point's `main`; argparse's exit included."""
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "g.keras"
    randomized(SRVGGNetCompact(scale=2, num_convs=1, num_features=4)).save(path)
    return path


@pytest.fixture
def odd(tmp_path):
    folder = tmp_path / "odd"
    return folder, corpus.odd_images(folder, np.random.default_rng(0))


def test_upscale_reads_what_it_can_and_names_the_rest(model_path, odd, tmp_path, capsys):
    folder, expected = odd
    out = tmp_path / "out"
    before = corpus.snapshot(folder)
    status, _, err = run(cli.main, ["upscale", folder, tmp_path / "missing.png", "-o", out,
                                    "--model", model_path, "--no-progress"], capsys)
    assert status == 1
    written = {path.name for path in out.iterdir()}
    for name, readable in expected.items():
        stem = os.path.splitext(name)[0]
        if readable:
            assert f"{stem}.png" in written, name
        else:
            assert f"{stem}.png" not in written and name in err, name
    assert "missing.png" in err
    assert f"{sum(not r for r in expected.values()) + 1} of {len(expected) + 1} inputs" in err
    assert "decompression bomb" in err
    with Image.open(out / "gray16.png") as image:  # 16-bit gray stays 16-bit gray
        assert image.mode.startswith("I") and image.size == (40, 40)
    with Image.open(out / "tiny.png") as image:
        assert image.size == (2, 2)
    assert corpus.snapshot(folder) == before
    # Run again: every existing output is kept, byte for byte.
    outputs = corpus.snapshot(out)
    status, _, err = run(cli.main, ["upscale", folder / "plain.png", "-o", out, "--model",
                                    model_path, "--no-progress"], capsys)
    assert status == 1 and "exists, kept" in err
    assert corpus.snapshot(out) == outputs


@pytest.mark.parametrize("options,message", [
    (["--tile", "-5"], "argument --tile: -5 is too small: at least 16 (or 0)"),
    (["--tile", "8"], "argument --tile: 8 is too small"),
    (["--tile-pad", "-1"], "argument --tile-pad: -1 is too small: at least 0"),
    (["--scale-out", "1e9"], "argument --scale-out: 1e+09 is outside (0, 16]"),
    (["--scale-out", "0"], "argument --scale-out: 0 is outside (0, 16]"),
    (["--scale-out", "nan"], "argument --scale-out: nan is outside"),
    (["--memory-budget", "0"], "argument --memory-budget: 0 is too small"),
    # The fixture's tiny SRVGGNetCompact costs 208 bytes per LR pixel: 1 MB holds a 71-pixel
    # padded tile, too small once 2 x 40 pixels of pad are taken off.
    (["--memory-budget", "1", "--tile-pad", "40"],
     "a memory budget of 1 MB leaves tiles under 16 pixels with a pad of 40"),
    (["--threads", "0"], "argument --threads: 0 is too small"),
])
def test_upscale_refuses_bad_numbers_before_any_work(model_path, tmp_path, capsys, options,
                                                     message):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    status, _, err = run(cli.main, ["upscale", tmp_path / "a.png", "-o", tmp_path / "out",
                                    "--model", model_path, *options], capsys)
    assert status in (1, 2) and message in err
    assert not (tmp_path / "out").exists()


def test_upscale_tile_zero_means_one_pass(model_path, tmp_path, capsys):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    status, _, _ = run(cli.main, ["upscale", tmp_path / "a.png", "-o", tmp_path / "o",
                                  "--model", model_path, "--tile", "0", "--no-progress"], capsys)
    assert status == 0 and Image.open(tmp_path / "o" / "a.png").size == (40, 40)


@pytest.mark.parametrize("case", ["same stem", "file name for two", "output under a file"])
def test_upscale_plans_its_outputs_before_writing_any(model_path, tmp_path, capsys, case):
    for folder, fmt in (("a", "PNG"), ("b", "BMP")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(
            tmp_path / folder / f"x.{fmt.lower()}", format=fmt)
    inputs = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.bmp"]
    out = {"same stem": tmp_path / "out", "file name for two": tmp_path / "two.png",
           "output under a file": tmp_path / "a" / "x.png" / "out"}[case]
    message = {"same stem": "x.png and .*x.bmp would both be written to",
               "file name for two": "names one file, but 2 images were given",
               "output under a file": "is a file, not a folder"}[case]
    before = corpus.snapshot(tmp_path)
    status, _, err = run(cli.main, ["upscale", *inputs, "-o", out, "--model", model_path,
                                    "--overwrite"], capsys)
    assert status == 1 and re.search(message, err), err
    assert corpus.snapshot(tmp_path) == before and not out.exists()
    if case == "same stem":
        status, _, _ = run(cli.main, ["upscale", *inputs, "-o", out, "--model", model_path,
                                      "--keep-extension", "--no-progress"], capsys)
        assert status == 0
        assert sorted(p.name for p in out.iterdir()) == ["x.bmp.png", "x.png.png"]


def test_convert_errors_keep_the_existing_output(model_path, tmp_path, capsys):
    from tests.robustness import weights

    target = tmp_path / "model.keras"
    target.write_bytes(b"the user's previous model")
    good = tmp_path / "good.pth"
    good.write_bytes(weights.valid_torch())
    cases = {
        "zero.pth": (b"", "is not a readable PyTorch checkpoint"),
        "truncated.pth": (weights.valid_torch()[:300], "is not a readable PyTorch checkpoint"),
        "hostile.pth": (weights.torch_zip([("w", 0, 16, -4, (4,), (1,))],
                                          {0: np.zeros(16, np.float32)}),
                        # Our reader's words, or torch.load's when PyTorch is installed.
                        "a tensor in storage 0 has a negative offset|invalid storage offset"),
        "garbage.safetensors": (b"\xff" * 40, "not a valid .safetensors file"),
        # Readable, but not an RRDBNet / SRVGGNetCompact: conversion fails after reading.
        "good.pth": (None, "unexpected keys"),
    }
    before = corpus.snapshot(tmp_path)
    for name, (data, message) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
            before = corpus.snapshot(tmp_path)
        status, _, err = run(cli.main, ["convert", tmp_path / name, "-o", target,
                                        "--overwrite"], capsys)
        assert status == 1 and re.search(message, err) and name in err, (name, err)
        assert corpus.snapshot(tmp_path) == before, name
    (tmp_path / "f.txt").write_text("a file, not a folder")
    status, _, err = run(cli.main, ["convert", model_path, "-o", tmp_path / "f.txt" / "x.pth"],
                         capsys)
    assert status == 1 and "is a file, not a folder" in err
    status, _, err = run(cli.main, ["convert", model_path, "--to", "basicsr", "-o", target],
                         capsys)
    assert status == 1 and "--to basicsr does not go with" in err


def test_convert_replaces_an_output_only_when_the_new_one_is_complete(model_path, tmp_path,
                                                                      capsys, monkeypatch):
    import keras

    from tests.robustness import weights  # noqa: F401

    target = tmp_path / "out.keras"
    target.write_bytes(b"previous")
    source = tmp_path / "net.pth"
    from keras_sr.convert import basicsr, export

    export(randomized(SRVGGNetCompact(num_convs=1, num_features=4)), source)
    saves = []

    def broken_save(self, path, *args, **kwargs):
        saves.append(path)
        with open(path, "wb") as file:
            file.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    status, _, err = run(cli.main, ["convert", source, "-o", target, "--overwrite"], capsys)
    assert status == 1 and "disk full" in err
    assert target.read_bytes() == b"previous"
    assert saves and not os.path.exists(saves[0])  # the partial file was removed
    monkeypatch.undo()
    status, _, _ = run(cli.main, ["convert", source, "-o", target, "--overwrite"], capsys)
    assert status == 0 and basicsr is not None
    assert keras.saving.load_model(target).count_params() > 0


def test_evaluate_checks_data_model_and_outputs_first(model_path, odd, tmp_path, capsys):
    folder, expected = odd
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "garbage.keras").write_bytes(b"garbage")
    both = tmp_path / "both"
    both.mkdir()
    for fmt in ("PNG", "JPEG"):
        Image.fromarray(np.full((32, 32, 3), 50, np.uint8)).save(both / f"x.{fmt.lower()}",
                                                                 format=fmt)
    cases = [
        (["--data", tmp_path / "empty"], "holds no image files"),
        (["--data", tmp_path / "nowhere"], "is not a folder"),
        (["--data", both, "--json", tmp_path / "a_file" / "r.json"], "is a file, not a folder"),
        (["--data", both, "--save-images", tmp_path / "a_file" / "sr"],
         "is a file, not a folder"),
        (["--data", both, "--save-images", tmp_path / "sr"], "x.jpeg and .*x.png would both"),
        (["--data", both, "--model", tmp_path / "garbage.keras"],
         "garbage.keras is not a .keras model file"),
    ]
    before = corpus.snapshot(tmp_path)
    for options, message in cases:
        model = [] if "--model" in options else ["--model", "bicubic"]
        status, _, err = run(evaluate.main, [*model, "--scale", "2", *options], capsys)
        assert status == 2 and re.search(message, err), (options, err)
        assert corpus.snapshot(tmp_path) == before
    status, _, _ = run(evaluate.main, ["--model", "bicubic", "--scale", "2", "--data", both,
                                       "--save-images", tmp_path / "sr", "--keep-extension",
                                       "--no-progress"], capsys)
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "sr" / "both").iterdir()) == [
        "x.jpeg.png", "x.jpeg_comparison.png", "x.png.png", "x.png_comparison.png"]
    # Unreadable images are skipped and named; the rest are measured.
    status, out, err = run(evaluate.main, ["--model", model_path, "--scale", "2", "--data",
                                           folder, "--json", tmp_path / "r.json",
                                           "--no-progress"], capsys)
    assert status == 1
    for name, readable in expected.items():
        if not readable:
            assert name in err, name
    assert "plain.png" in out and "ünïcødé.png" in out
    kept = (tmp_path / "r.json").read_bytes()
    status, _, err = run(evaluate.main, ["--model", "bicubic", "--scale", "2", "--data", both,
                                         "--json", tmp_path / "r.json"], capsys)
    assert status == 2 and "exists" in err and (tmp_path / "r.json").read_bytes() == kept


def test_interpolate_refuses_bad_models_and_outputs(model_path, tmp_path, capsys):
    (tmp_path / "garbage.keras").write_bytes(b"garbage")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "kept.keras").write_bytes(b"kept")
    cases = [
        (["--psnr", tmp_path / "garbage.keras", "--gan", model_path, "--alpha", "0.5", "--out",
          tmp_path / "o.keras"], "garbage.keras is not a .keras model file"),
        (["--psnr", model_path, "--gan", model_path, "--alpha", "0.5", "--out",
          tmp_path / "a_file" / "o.keras"], "is a file, not a folder"),
        (["--psnr", model_path, "--gan", model_path, "--alpha", "0.5", "--out",
          tmp_path / "kept.keras"], "exists; pass --overwrite"),
        (["--psnr", model_path, "--gan", model_path, "--alpha", "-0.1", "--out",
          tmp_path / "o.keras"], "-0.1 is outside [0, 1]"),
    ]
    before = corpus.snapshot(tmp_path)
    for options, message in cases:
        status, _, err = run(interpolate.main, options, capsys)
        assert status == 2 and message in err, (options, err)
        assert corpus.snapshot(tmp_path) == before


def test_exporters_refuse_bad_options_before_work(model_path, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "g.tflite.parity.json").write_text("{}")
    cases = [
        (saved_model.main, ["--model", model_path, "--out", tmp_path / "a_file"],
         "is a file, not a folder"),
        (saved_model.main, ["--model", model_path, "--out", tmp_path / "m", "--max-pixels", "0"],
         "argument --max-pixels: 0 is too small"),
        (saved_model.main, ["--model", model_path, "--out", tmp_path / "m", "--version", "-2"],
         "argument --version: -2 is too small"),
        (saved_model.main, ["--model", tmp_path / "a_file", "--out", tmp_path / "m"],
         "neither a .keras file, a weights file"),
        (tflite.main, ["--model", model_path, "--out", tmp_path / "g.tflite", "--input-size",
                       "0", "8"], "argument --input-size: 0 is too small"),
        (tflite.main, ["--model", model_path, "--out", tmp_path / "g.tflite"],
         "the parity report"),
        (tflite.main, ["--model", model_path, "--out", tmp_path / "a_file" / "g.tflite"],
         "is a file, not a folder"),
        (make_tfrecords.main, [tmp_path, "--out", tmp_path / "s", "--shards", "0"],
         "argument --shards: 0 is too small"),
        (make_tfrecords.main, [tmp_path / "nowhere", "--out", tmp_path / "s"],
         "no such image folder"),
    ]
    before = corpus.snapshot(tmp_path)
    for main, options, message in cases:
        status, _, err = run(main, options, capsys)
        assert status in (1, 2) and message in err, (options, err)
        assert corpus.snapshot(tmp_path) == before, options
    assert not (tmp_path / "m").exists() and not (tmp_path / "s").exists()


def test_client_plans_outputs_and_goes_on_past_a_failure(model_path, tmp_path, capsys):
    import keras

    base = tmp_path / "models" / "tiny"
    saved_model.export(keras.saving.load_model(model_path), str(base))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "b" / "x.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "a_file").write_text("x")
    with ServingDouble("tiny", str(base)) as server:
        common = ["--model-name", "tiny", "--url", server.url]
        status, _, err = run(client.main, [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png",
                                           "-o", tmp_path / "out", *common], capsys)
        assert status == 2 and "would both be written" in err
        status, _, err = run(client.main, [tmp_path / "a" / "x.png", "-o",
                                           tmp_path / "a_file", *common], capsys)
        assert status == 2 and "is a file" in err
        status, _, err = run(client.main, [tmp_path / "bad.png", tmp_path / "missing.png",
                                           tmp_path / "a" / "x.png", "-o", tmp_path / "out",
                                           *common], capsys)
        assert status == 1 and "bad.png" in err and "missing.png" in err
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
