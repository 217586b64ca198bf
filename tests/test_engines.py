"""What runs a Keras model in `keras-sr upscale`: TensorFlow or LiteRT (keras_sr.engines)."""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from keras_sr import cli, engines, litert
from keras_sr.models import SRVGGNetCompact
from keras_sr.precision import Device
from tests.convert.test_ncnn import randomized

AVX2 = frozenset({"avx", "avx2", "fma"})
AVX2_CPU = Device((), AVX2, False)


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SR_CACHE", str(tmp_path / "cache"))
    model = randomized(SRVGGNetCompact(scale=2, num_convs=2, num_features=8))
    path = tmp_path / "g.keras"
    model.save(path)
    return model, str(path)


def lr_images(rng, height=13, width=17):
    return rng.random((1, height, width, 3), dtype=np.float32)


def test_litert_matches_tensorflow_and_converts_once(model_file, rng, monkeypatch):
    model, path = model_file
    image = lr_images(rng)
    upscaler = engines.load(path, "litert")
    assert upscaler.engine.startswith("LiteRT/XNNPACK on ")
    assert upscaler.precision == "float32"
    np.testing.assert_allclose(upscaler(image), model(image).numpy(), atol=1e-5)
    cached = sorted(os.listdir(os.path.join(os.environ["KERAS_SR_CACHE"], "litert")))
    assert [os.path.splitext(name)[1] for name in cached] == [".json", ".tflite"]
    # Tiles are costed as the Keras model's: a compact model's features stay at LR size.
    tensorflow = engines.load(path, "tensorflow", precision="float32")
    assert upscaler.bytes_per_pixel == tensorflow.bytes_per_pixel < 1000

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")
    monkeypatch.setattr(litert, "converter", no_conversion)
    again = engines.load(path, "litert")
    np.testing.assert_allclose(again(image), upscaler(image), atol=0)
    assert again.bytes_per_pixel == tensorflow.bytes_per_pixel


def test_a_changed_or_corrupt_cache_entry_is_converted_again(model_file, rng, tmp_path):
    _, path = model_file
    image = lr_images(rng)
    engines.load(path, "litert")
    folder = os.path.join(os.environ["KERAS_SR_CACHE"], "litert")
    (entry,) = [name for name in os.listdir(folder) if name.endswith(".tflite")]
    with open(os.path.join(folder, entry), "wb") as file:
        file.write(b"not a flatbuffer")
    model = randomized(SRVGGNetCompact(scale=2, num_convs=2, num_features=8), seed=7)
    np.testing.assert_allclose(engines.load(path, "litert")(image),
                               engines.load(path, "tensorflow", precision="float32")(image),
                               atol=1e-5)
    model.save(path)  # the same path, other weights: a new entry, the new model's output
    np.testing.assert_allclose(engines.load(path, "litert")(image), model(image).numpy(),
                               atol=1e-5)
    assert len([name for name in os.listdir(folder) if name.endswith(".tflite")]) == 2


def test_auto_converts_a_corrupt_cache_entry_again_under_a_kept_verdict(model_file, rng,
                                                                        monkeypatch):
    model, path = model_file
    image = lr_images(rng)
    monkeypatch.setattr(engines, "compare", lambda *args: {
        "engine": "litert", "tensorflow_s": 0.2, "litert_s": 0.1, "psnr_db": 99.0})
    assert engines.load(path, "auto", precision="float32", device=AVX2_CPU).engine.startswith(
        "LiteRT")
    folder = os.path.join(os.environ["KERAS_SR_CACHE"], "litert")
    (entry,) = [name for name in os.listdir(folder) if name.endswith(".tflite")]
    with open(os.path.join(folder, entry), "wb") as file:
        file.write(b"not a flatbuffer")
    again = engines.load(path, "auto", precision="float32", device=AVX2_CPU)
    assert again.engine.startswith("LiteRT") and "timed once" in again.engine_reason
    np.testing.assert_allclose(again(image), model(image).numpy(), atol=1e-5)


class Fake:
    def __init__(self, seconds, output):
        self.seconds, self.output = seconds, output

    def __call__(self, image):
        time.sleep(self.seconds)
        return self.output


def test_compare_takes_the_faster_unless_its_output_is_off():
    image = np.zeros((1, 8, 8, 3), np.float32)
    good = np.full((1, 16, 16, 3), 0.5, np.float32)
    verdict = engines.compare(Fake(0.03, good), Fake(0.0, good + 1e-6), image)
    assert verdict["engine"] == "litert"
    assert verdict["litert_s"] < verdict["tensorflow_s"]
    assert verdict["psnr_db"] > 100
    assert engines.compare(Fake(0.0, good), Fake(0.03, good), image)["engine"] == "tensorflow"
    off = engines.compare(Fake(0.03, good), Fake(0.0, good + 0.1), image)
    assert off["engine"] == "tensorflow" and off["psnr_db"] < 45


def test_auto_times_both_once_and_keeps_the_verdict(model_file, rng, monkeypatch):
    model, path = model_file
    said = []
    first = engines.load(path, "auto", precision="float32", device=AVX2_CPU, log=said.append)
    assert said and "once" in said[0]
    with open(os.path.join(os.environ["KERAS_SR_CACHE"], "engines.json")) as file:
        (verdict,) = json.load(file).values()
    expected = "litert" if verdict["litert_s"] < verdict["tensorflow_s"] else "tensorflow"
    assert verdict["engine"] == expected
    assert first.engine.startswith("LiteRT" if expected == "litert" else "TensorFlow")
    assert "timed now" in first.engine_reason
    image = lr_images(rng)
    np.testing.assert_allclose(first(image), model(image).numpy(), atol=1e-5)

    def no_timing(*args):
        raise AssertionError("timed again")
    monkeypatch.setattr(engines, "compare", no_timing)
    said.clear()
    second = engines.load(path, "auto", precision="float32", device=AVX2_CPU, log=said.append)
    assert not said
    assert second.engine == first.engine
    assert "timed once" in second.engine_reason


@pytest.mark.parametrize("device, precision, available, reason", [
    (Device(((8, 0),), AVX2, False), "auto", True, "a GPU runs it"),
    (AVX2_CPU, "bfloat16", True, "bfloat16 runs in TensorFlow"),
    (AVX2_CPU, "float32", False, "ai-edge-litert is not installed"),
])
def test_auto_keeps_tensorflow_where_litert_cannot_win(model_file, monkeypatch, device,
                                                       precision, available, reason):
    _, path = model_file
    monkeypatch.setattr(engines, "litert_available", lambda: available)
    monkeypatch.setattr(engines, "compare", lambda *args: pytest.fail("timed"))
    upscaler = engines.load(path, "auto", precision=precision, device=device)
    assert upscaler.engine == "TensorFlow"
    assert reason in upscaler.engine_reason


def test_engines_refuse_what_they_cannot_run(model_file, tmp_path):
    _, path = model_file
    with pytest.raises(ValueError, match="computes in float32; --precision bfloat16"):
        engines.load(path, "litert", precision="bfloat16")
    with pytest.raises(ValueError, match="engine must be one of"):
        engines.load(path, "onnx")
    served = tmp_path / "served"
    served.mkdir()
    (served / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{served} is a SavedModel"):
        engines.load(str(served), "litert")
    flatbuffer = tmp_path / "g.tflite"
    flatbuffer.write_bytes(b"")
    with pytest.raises(ValueError, match="g.tflite runs in LiteRT"):
        engines.load(str(flatbuffer), "tensorflow")


def test_upscale_engine_option(model_file, tmp_path, rng):
    _, path = model_file
    Image.fromarray((rng.random((20, 26, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    results = {}
    for engine in ("tensorflow", "litert"):
        out = tmp_path / f"{engine}.png"
        assert cli.main(["upscale", str(tmp_path / "a.png"), "-o", str(out), "--model", path,
                         "--engine", engine, "--precision", "float32", "--no-progress"]) == 0
        results[engine] = np.asarray(Image.open(out), int)
    assert results["tensorflow"].shape == (40, 52, 3)
    assert np.abs(results["tensorflow"] - results["litert"]).max() <= 1
    with pytest.raises(SystemExit):
        cli.main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.png"), "--model",
                  path, "--engine", "onnx"])


def test_a_cache_that_cannot_be_written_only_costs_the_conversion(model_file, rng, tmp_path,
                                                                   monkeypatch):
    model, path = model_file
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("KERAS_SR_CACHE", str(blocked))
    image = lr_images(rng)
    upscaler = engines.load(path, "litert")
    np.testing.assert_allclose(upscaler(image), model(image).numpy(), atol=1e-5)
    auto = engines.load(path, "auto", precision="float32", device=AVX2_CPU)
    np.testing.assert_allclose(auto(image), model(image).numpy(), atol=1e-5)


def test_a_model_litert_cannot_run_stays_in_tensorflow(tmp_path, rng, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_SR_CACHE", str(tmp_path / "cache"))
    inputs = keras.Input((None, None, 3))
    # Keras' UpSampling2D with a dynamic size turns the next conv into a Flex op.
    outputs = keras.layers.Conv2D(3, 3, padding="same")(keras.layers.UpSampling2D(2)(inputs))
    model = keras.Model(inputs, outputs, name="flexible")
    model.save(tmp_path / "flex.keras")
    path = str(tmp_path / "flex.keras")
    with pytest.raises(ValueError, match="flexible cannot be converted to TFLite"):
        engines.load(path, "litert")
    upscaler = engines.load(path, "auto", precision="float32", device=AVX2_CPU)
    assert upscaler.engine == "TensorFlow"
    assert "LiteRT cannot run it: flexible cannot be converted" in upscaler.engine_reason
    image = lr_images(rng)
    np.testing.assert_allclose(upscaler(image), model(image).numpy(), atol=1e-6)
    monkeypatch.setattr(engines, "converted", lambda spec: pytest.fail("converted again"))
    again = engines.load(path, "auto", precision="float32", device=AVX2_CPU)
    assert again.engine == "TensorFlow" and "cannot run it" in again.engine_reason


# A `keras-sr upscale` in a fresh Python, as the console script starts it; prints its exit
# status and whether TensorFlow and Keras were imported.
FRESH_UPSCALE = """
import os, sys
os.environ["KERAS_SR_PARSING"] = "1"
from keras_sr import cli
status = cli.main(["upscale", *sys.argv[1:], "--no-progress", "--overwrite"])
print(status, "tensorflow" in sys.modules, "keras" in sys.modules)
"""


def fresh_upscale(*args, **environment):
    import subprocess
    import sys

    # As a user starts it: TF_CPP_MIN_LOG_LEVEL is the command's to choose (tests set 2).
    inherited = {name: value for name, value in os.environ.items()
                 if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", FRESH_UPSCALE, *map(str, args)],
                            capture_output=True, text=True, timeout=300,
                            env={**inherited, "TF_ENABLE_ONEDNN_OPTS": "0", **environment})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()[-3:], result.stderr


def test_a_cached_litert_run_never_starts_tensorflow(model_file, tmp_path, rng):
    _, path = model_file
    Image.fromarray((rng.random((12, 10, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    deep = (rng.random((9, 11)) * 65535).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    # The first run converts the model: TensorFlow starts.
    said, _ = fresh_upscale(tmp_path / "a.png", "-o", tmp_path / "first", "--model", path,
                            "--engine", "litert")
    assert said == ["0", "True", "True"]
    # With the flatbuffer cached, LiteRT runs alone, and writes the same file.
    said, err = fresh_upscale(tmp_path / "a.png", "-o", tmp_path / "second", "--model", path,
                              "--engine", "litert")
    assert said == ["0", "False", "False"], err
    assert "through LiteRT/XNNPACK" in err and "(--engine litert)" in err
    assert ((tmp_path / "first" / "a.png").read_bytes()
            == (tmp_path / "second" / "a.png").read_bytes())
    # `auto` (float32 here: oneDNN off) follows the verdict kept for this model and CPU.
    threads = engines.default_threads()
    key = engines._verdict_key(engines._file_key(path, engines.installed_tensorflow_version()),
                               threads)
    verdicts = os.path.join(os.environ["KERAS_SR_CACHE"], "engines.json")
    for engine, started in (("litert", "False"), ("tensorflow", "True")):
        with open(verdicts, "w") as file:
            json.dump({key: {"engine": engine, "tensorflow_s": 0.2, "litert_s": 0.1,
                             "psnr_db": 99.0}}, file)
        said, err = fresh_upscale(tmp_path / "a.png", "-o", tmp_path / engine, "--model", path)
        assert said == ["0", started, started], err
        assert "timed once" in err
    # A cached flatbuffer that does not load is converted again, by TensorFlow.
    folder = os.path.join(os.environ["KERAS_SR_CACHE"], "litert")
    (entry,) = [name for name in os.listdir(folder) if name.endswith(".tflite")]
    with open(os.path.join(folder, entry), "wb") as file:
        file.write(b"not a flatbuffer")
    said, err = fresh_upscale(tmp_path / "a.png", "-o", tmp_path / "again", "--model", path,
                              "--engine", "litert")
    assert said == ["0", "True", "True"], err
    assert ((tmp_path / "first" / "a.png").read_bytes()
            == (tmp_path / "again" / "a.png").read_bytes())
    # A 16-bit PNG needs TensorFlow's codec: it starts then, as quietly as at the start.
    said, err = fresh_upscale(tmp_path / "deep.png", "-o", tmp_path / "deep", "--model", path,
                              "--engine", "litert")
    assert said == ["0", "True", "True"]
    assert "oneDNN" not in err and "cuda" not in err.lower()
    with Image.open(tmp_path / "deep" / "deep.png") as result:
        assert result.mode.startswith("I") and np.asarray(result).max() > 255


def test_gpu_possible_looks_for_a_driver_without_tensorflow(monkeypatch):
    from keras_sr import precision

    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    nodes = set()
    monkeypatch.setattr(precision.os.path, "exists", lambda path: path in nodes)
    assert not precision.gpu_possible()
    for node in precision.GPU_DEVICE_NODES:
        nodes = {node}
        assert precision.gpu_possible()
    monkeypatch.setattr(precision.platform, "system", lambda: "Darwin")
    nodes = set()
    assert precision.gpu_possible()
