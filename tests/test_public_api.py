"""`import keras_sr` is all a fresh process needs: the public API is there and every saved
network and layer loads with plain `keras.saving.load_model`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import keras_sr
from keras_sr import layers, metrics, models
from keras_sr.trainers.schedules import LinearWarmup
from tests.convert.test_ncnn import randomized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FRESH_PROCESS = """
import json, sys
import numpy as np
import keras_sr, keras
folder = sys.argv[1]
with open(f"{folder}/cases.json") as handle:
    cases = json.load(handle)
results = {}
for name, case in cases.items():
    model = keras.saving.load_model(f"{folder}/{name}.keras")
    inputs = [np.load(f"{folder}/{name}_in{i}.npy") for i in range(case["inputs"])]
    outputs = keras.ops.convert_to_numpy(model(inputs if len(inputs) > 1 else inputs[0]))
    expected = np.load(f"{folder}/{name}_out.npy")
    results[name] = {"class": type(model).__name__ if case["network"] else
                     type(model.layers[-1]).__name__,
                     "max_diff": float(np.abs(outputs - expected).max())}
objects = {}
with open(f"{folder}/objects.json") as handle:
    for name, config in json.load(handle).items():
        objects[name] = type(keras.saving.deserialize_keras_object(config)).__name__
print(json.dumps({"models": results, "objects": objects,
                  "api": sorted(name for name in ("models", "layers", "losses", "metrics",
                                                  "presets", "inference", "precision",
                                                  "convert", "litert", "trainers")
                                if hasattr(keras_sr, name))}))
"""


def networks():
    return {
        "rrdbnet": (models.RRDBNet(num_blocks=1, num_features=8, growth_channels=4), [(9, 7, 3)]),
        "rrdbnet_x2": (models.RRDBNet(scale=2, num_blocks=1, num_features=8, growth_channels=4),
                       [(9, 7, 3)]),
        "srresnet": (models.SRResNet(num_blocks=1, num_features=8), [(9, 7, 3)]),
        "srvgg_compact": (models.SRVGGNetCompact(num_convs=2, num_features=8), [(9, 7, 3)]),
        "srgan_d": (models.SRGANDiscriminator(input_size=32, num_features=8), [(32, 32, 3)]),
        "vgg_d": (models.VGGStyleDiscriminator(input_size=64, num_features=8), [(64, 64, 3)]),
        "unet_d": (models.UNetDiscriminatorSN(num_features=8), [(16, 24, 3)]),
    }


def wrapped_layers():
    def wrap(layer, *shapes):
        inputs = [keras.Input(shape) for shape in shapes]
        return keras.Model(inputs, layer(inputs if len(inputs) > 1 else inputs[0]))

    def shapes(*shapes):
        return [tuple(8 if side is None else side for side in shape) for shape in shapes]

    table = {
        "pixel_shuffle": (layers.PixelShuffle(2), [(None, None, 12)]),
        "pixel_unshuffle": (layers.PixelUnshuffle(2), [(None, None, 3)]),
        "nearest_upsampling": (layers.NearestUpsampling(2), [(None, None, 3)]),
        "bilinear_upsampling": (layers.ResizeUpsampling(2, "bilinear"), [(None, None, 3)]),
        "reflect_pad": (layers.ReflectPadToMultiple(4), [(None, None, 3)]),
        "crop": (layers.CropToScaledSize(2), [(None, None, 3), (None, None, 3)]),
        "clip": (layers.ClipToUnitRange(), [(None, None, 3)]),
        "residual_block": (layers.ResidualBlock(num_features=3), [(None, None, 3)]),
        "residual_dense_block": (layers.ResidualDenseBlock(num_features=3, growth_channels=2),
                                 [(None, None, 3)]),
        "rrdb": (layers.RRDB(num_features=3, growth_channels=2), [(None, None, 3)]),
    }
    return {name: (wrap(layer, *spec), shapes(*spec)) for name, (layer, spec) in table.items()}


def test_import_keras_sr_alone_loads_every_network_and_layer(tmp_path):
    rng = np.random.default_rng(0)
    cases = {}
    for group, table in (("network", networks()), ("layer", wrapped_layers())):
        for name, (model, input_shapes) in table.items():
            model = randomized(model, seed=len(cases))
            for weight in model.weights:  # BatchNorm's variance must stay positive
                if "variance" in weight.path:
                    weight.assign(np.abs(keras.ops.convert_to_numpy(weight)) + 0.5)
            inputs = [rng.random((1, *shape), dtype=np.float32) for shape in input_shapes]
            output = keras.ops.convert_to_numpy(model(inputs if len(inputs) > 1 else inputs[0]))
            model.save(tmp_path / f"{name}.keras")
            for index, array in enumerate(inputs):
                np.save(tmp_path / f"{name}_in{index}.npy", array)
            np.save(tmp_path / f"{name}_out.npy", output)
            cases[name] = {"inputs": len(inputs), "network": group == "network"}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    objects = {"psnr": metrics.PSNR(border=4), "ssim": metrics.SSIM(channel="rgb"),
               "warmup": LinearWarmup(1e-3, 10)}
    (tmp_path / "objects.json").write_text(json.dumps(
        {name: keras.saving.serialize_keras_object(obj) for name, obj in objects.items()}))
    run = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path)], cwd=str(tmp_path),
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result["models"]) == set(cases)
    for name, outcome in result["models"].items():
        assert outcome["max_diff"] <= 1e-6, (name, outcome)
    assert result["models"]["rrdbnet"]["class"] == "RRDBNet"
    assert result["models"]["rrdb"]["class"] == "RRDB"
    assert result["objects"] == {"psnr": "PSNR", "ssim": "SSIM", "warmup": "LinearWarmup"}
    assert result["api"] == sorted(["models", "layers", "losses", "metrics", "presets",
                                    "inference", "precision", "convert", "litert", "trainers"])


def test_the_package_names_its_version_and_api():
    assert keras_sr.__version__
    assert {"models", "layers", "presets", "precision"} <= set(keras_sr.__all__)
