import keras
import numpy as np
import pytest

from export import tflite
from keras_sr.models import RRDBNet, SRResNet, SRVGGNetCompact
from tests.helpers import random_images

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
