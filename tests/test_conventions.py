"""The stack decisions in the brief, checked over the source tree."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in ("keras_sr", "training", "export", "benchmarks")
    for path in (ROOT / folder).rglob("*.py")
)

FORBIDDEN = {
    r"\btf\.keras\b": "use `import keras` (Keras 3), never tf.keras",
    r"tensorflow\.python": "tensorflow.python.* is private API",
    r"tensorflow_addons|tfa\.": "tensorflow-addons is end-of-life and breaks with Keras 3",
    r"layers\.Lambda\(": "Lambda layers do not reload from .keras files",
    r"layers\.UpSampling2D\(": "UpSampling2D makes the next conv a Flex op in TFLite",
}


def test_there_are_sources_to_check():
    assert len(SOURCES) > 10


@pytest.mark.parametrize("pattern,reason", FORBIDDEN.items())
def test_no_forbidden_api(pattern, reason):
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(pattern, line) and not line.lstrip().startswith("#")
    ]
    assert not offenders, f"{reason}: {offenders}"


def test_networks_never_import_training_code():
    # STYLE.md: what a model is (layers, models) never depends on how it learns.
    network_sources = [p for p in SOURCES if p.parent.name in ("layers", "models")]
    assert network_sources
    offenders = [
        str(path.relative_to(ROOT)) for path in network_sources
        if re.search(r"^\s*(from|import) (keras_sr\.(trainers|losses)|training)\b",
                     path.read_text(), re.MULTILINE)
    ]
    assert not offenders


def test_the_library_never_imports_its_applications():
    # STYLE.md: training/ and export/ are applications on top of keras_sr, never the reverse.
    library = [p for p in SOURCES if p.relative_to(ROOT).parts[0] == "keras_sr"]
    assert len(library) > 20
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in library
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.match(r"\s*(from|import) (training|export|benchmarks|tests)\b", line)
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("name", ["RRDBNet", "SRResNet", "SRGANDiscriminator",
                                  "VGGStyleDiscriminator"])
def test_tensorflow_checkpoints_hold_every_variable(name, tmp_path):
    # Training checkpoints use tf.train.Checkpoint, which skips layers kept in Keras 3 list
    # wrappers; a network whose nested layers were missed would resume half-initialised.
    import tensorflow as tf

    import keras_sr.models

    kwargs = {"num_features": 8}
    if name in ("RRDBNet", "SRResNet"):
        kwargs["num_blocks"] = 2
    if name == "RRDBNet":
        kwargs["growth_channels"] = 4
    if "Discriminator" in name:
        kwargs["input_size"] = 32 if name == "SRGANDiscriminator" else 64
    model = getattr(keras_sr.models, name)(**kwargs)
    path = tf.train.Checkpoint(network=model).save(str(tmp_path / "ckpt"))
    saved = [key for key in tf.train.load_checkpoint(path).get_variable_to_shape_map()
             if key.startswith("network/")]
    assert len(saved) == len(model.weights)
