import json

import keras
import numpy as np
import pytest

from export import tflite
from keras_sr.models import RRDBNet, SRResNet, SRVGGNetCompact
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

TINY_MODELS = {
    "rrdbnet_x4": lambda: RRDBNet(scale=4, num_blocks=1, num_features=8, growth_channels=4),
    "rrdbnet_x2": lambda: RRDBNet(scale=2, num_blocks=1, num_features=8, growth_channels=4),
    "srresnet_x4": lambda: SRResNet(scale=4, num_blocks=1, num_features=8),
    "srvgg_compact_x4": lambda: SRVGGNetCompact(scale=4, num_convs=2, num_features=8),
}


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_dynamic_shape_model_runs_in_litert_at_two_sizes(name):
    model = TINY_MODELS[name]()
    flatbuffer = tflite.convert(model)

    operators = tflite.operator_names(flatbuffer)
    assert "CONV_2D" in operators
    assert not [op for op in operators if op == "CUSTOM" or op.startswith("Flex")], operators

    interpreter = tflite.interpreter(flatbuffer)
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [-1, -1, -1, 3]
    for shape in [(1, 12, 12, 3), (1, 17, 23, 3)]:
        images = random_images(shape, seed=shape[1])
        expected = keras.ops.convert_to_numpy(model(images))
        np.testing.assert_allclose(tflite.run(interpreter, images), expected, atol=1e-5)
        assert tuple(interpreter.get_input_details()[0]["shape"]) == shape


def test_fixed_input_size_model_has_a_static_shape():
    model = TINY_MODELS["rrdbnet_x4"]()
    interpreter = tflite.interpreter(tflite.convert(model, input_size=(16, 20)))
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [1, 16, 20, 3]
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 64, 80, 3]
    images = random_images((1, 16, 20, 3))
    np.testing.assert_allclose(
        tflite.run(interpreter, images), keras.ops.convert_to_numpy(model(images)), atol=1e-5
    )


def test_upsampling2d_is_refused_with_the_flex_op_named():
    # Keras' UpSampling2D with a dynamic size turns the next conv into a Flex op.
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(3, 3, padding="same")(keras.layers.UpSampling2D(2)(inputs))
    model = keras.Model(inputs, outputs, name="upsampling2d_net")
    with pytest.raises(ValueError, match=r"upsampling2d_net .* builtin ops only: .*Conv2D"):
        tflite.convert(model)


@pytest.mark.parametrize("bad_size", [(0, 16), (16,), (16.5, 16)])
def test_bad_input_size_is_named(bad_size):
    with pytest.raises(ValueError, match="input_size must be"):
        tflite.convert(TINY_MODELS["srresnet_x4"](), input_size=bad_size)


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
def test_quantized_models_stay_builtin_and_close_to_keras(quantize):
    model = TINY_MODELS["srvgg_compact_x4"]()
    calibration = [random_images((12, 12, 3), seed=seed) for seed in range(4)]
    flatbuffer = tflite.convert(model, quantize=quantize, representative_images=calibration)
    operators = tflite.operator_names(flatbuffer)
    assert not [op for op in operators if op == "CUSTOM" or op.startswith("Flex")], operators
    report = tflite.parity_report(model, flatbuffer, calibration, quantize)
    json.dumps(report)  # the command line writes it as JSON
    # Tiny random nets are far from the real targets' regime; these bounds only show each mode
    # really quantizes (not float32) and still computes the same function.
    assert 20.0 < report["min_psnr_db"] < float("inf")
    assert report["max_abs_error"] > 0


def test_parity_report_of_float32_meets_its_target():
    model = TINY_MODELS["rrdbnet_x4"]()
    images = [random_images((12, 12, 3), seed=seed) for seed in range(2)]
    report = tflite.parity_report(model, tflite.convert(model), images, "none")
    assert report["meets_target"] and report["max_abs_error"] <= 1e-5
    assert report["images"] == 2 and len(report["per_image"]) == 2


def test_command_line_writes_model_and_report(tmp_path, capsys):
    import json

    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(2):
        Image.fromarray((random_images((20, 24, 3), seed=seed) * 255).astype(np.uint8)).save(
            photos / f"p{seed}.png")
    model_path = tmp_path / "g.keras"
    TINY_MODELS["srvgg_compact_x4"]().save(model_path)
    out = tmp_path / "g.tflite"
    args = ["--model", str(model_path), "--out", str(out), "--representative", str(photos)]
    assert tflite.main(args + ["--input-size", "16", "16"]) == 0
    report = json.loads((tmp_path / "g.tflite.parity.json").read_text())
    assert report["meets_target"] and report["input_size"] == [16, 16]
    assert "meets max abs error" in capsys.readouterr().out
    before = out.read_bytes()
    assert tflite.main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert tflite.main(["--model", str(tmp_path / "none.keras"), "--out",
                        str(tmp_path / "x.tflite"), "--representative", str(photos)]) == 1
    assert "none.keras" in capsys.readouterr().err


def test_int8_needs_representative_images():
    with pytest.raises(ValueError, match="representative images"):
        tflite.convert(TINY_MODELS["srvgg_compact_x4"](), quantize="int8")


def conv_output_types(flatbuffer):
    """{conv layer name: output dtype name} of a `.tflite` model's CONV_2D ops."""
    interpreter = tflite.interpreter(flatbuffer)
    types = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "CONV_2D":
            tensor = interpreter._get_tensor_details(op["outputs"][0], 0)
            layer = tensor["name"].split("/")[1].rsplit("_", 1)[0]
            types[layer] = tensor["dtype"].__name__
    return types


def test_int8_can_keep_named_layers_in_float():
    model = TINY_MODELS["rrdbnet_x4"]()
    calibration = [random_images((12, 12, 3), seed=seed) for seed in range(4)]
    plain = conv_output_types(tflite.convert(model, quantize="int8",
                                             representative_images=calibration))
    assert set(plain.values()) == {"int8"} and {"conv_first", "conv_last"} <= set(plain)
    flatbuffer = tflite.convert(model, quantize="int8", representative_images=calibration,
                                float_layers=("conv_first", "conv_up1", "conv_last"))
    mixed = conv_output_types(flatbuffer)
    assert {name for name, kind in mixed.items() if kind == "float32"} == \
        {"conv_first", "conv_up1", "conv_last"}
    assert mixed["conv_body"] == mixed["conv_hr"] == "int8"
    operators = tflite.operator_names(flatbuffer)
    assert not [op for op in operators if op == "CUSTOM" or op.startswith("Flex")], operators
    report = tflite.parity_report(model, flatbuffer, calibration, "int8")
    assert 20.0 < report["min_psnr_db"] < float("inf")


def test_float_layers_are_checked():
    model = TINY_MODELS["rrdbnet_x4"]()
    calibration = [random_images((12, 12, 3))]
    with pytest.raises(ValueError, match="does not have: conv_fist"):
        tflite.convert(model, quantize="int8", representative_images=calibration,
                       float_layers=("conv_fist",))
    with pytest.raises(ValueError, match="float_layers applies to int8"):
        tflite.convert(model, quantize="dynamic", float_layers=("conv_first",))
