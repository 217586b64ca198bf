import keras
import numpy as np
import pytest

from keras_sr.models import SRVGGNetCompact
from tests.helpers import (
    check_config_round_trip,
    check_generator_outputs,
    check_keras_reload,
    random_images,
)

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

TINY = {"num_convs": 2, "num_features": 8}


@pytest.mark.parametrize("num_convs,count", [(16, 621_424), (32, 1_213_296)])
def test_published_sizes_have_the_pytorch_parameter_counts(num_convs, count):
    # realesr-animevideov3 (16 convs) and realesr-general-x4v3 (32 convs), 64 features:
    # 3*64*9+64 + 64 + num_convs * (64*64*9+64 + 64) + 64*48*9+48.
    assert SRVGGNetCompact(num_convs=num_convs).count_params() == count


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_output_is_scale_times_input_for_odd_sizes(scale):
    check_generator_outputs(SRVGGNetCompact(scale=scale, **TINY), scale, [(37, 53), (9, 16)])


def test_body_learns_a_residual_over_the_nearest_upsampled_input():
    model = SRVGGNetCompact(scale=3, **TINY)
    conv_last = model.get_layer("conv_last")
    conv_last.set_weights([np.zeros_like(w) for w in conv_last.get_weights()])
    images = random_images((1, 7, 5, 3))
    expected = images.repeat(3, axis=1).repeat(3, axis=2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)), expected, atol=1e-7)


@pytest.mark.parametrize("activation,layer_type", [
    ("prelu", keras.layers.PReLU), ("relu", keras.layers.ReLU),
    ("leaky_relu", keras.layers.LeakyReLU)])
def test_activation_is_configurable(activation, layer_type):
    model = SRVGGNetCompact(activation=activation, **TINY)
    assert isinstance(model.get_layer("act_first"), layer_type)
    if activation == "prelu":
        # One slope per channel, as torch.nn.PReLU(num_parameters=num_features).
        assert model.get_layer("act_2").alpha.shape == (1, 1, 8)


def test_config_round_trip_keeps_name_dtype_and_arguments():
    check_config_round_trip(SRVGGNetCompact, scale=3, activation="leaky_relu", **TINY)


def test_keras_file_reload_keeps_name_dtype_and_outputs(tmp_path):
    model = SRVGGNetCompact(scale=2, name="compact_g", dtype="float64", **TINY)
    check_keras_reload(model, random_images((1, 13, 11, 3)), tmp_path)


def test_mixed_precision_returns_float32():
    model = SRVGGNetCompact(dtype="mixed_bfloat16", **TINY)
    assert model.get_layer("conv_first").compute_dtype == "bfloat16"
    assert model(random_images((1, 12, 12, 3))).dtype == "float32"


@pytest.mark.parametrize("kwargs,message", [
    ({"scale": 0}, "integer scale >= 1"), ({"scale": 2.5}, "integer scale >= 1"),
    ({"num_features": 0}, "num_features >= 1"), ({"activation": "gelu"}, "activation")])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SRVGGNetCompact(**{**TINY, **kwargs})


def test_prelu_slopes_start_where_pytorchs_do():
    """torch.nn.PReLU starts every slope at 0.25 (Keras' default is 0, a ReLU): a compact model
    trained from scratch starts as Real-ESRGAN's does."""
    model = SRVGGNetCompact(num_convs=2, num_features=8)
    slopes = [layer.get_weights()[0] for layer in model.layers
              if isinstance(layer, keras.layers.PReLU)]
    assert len(slopes) == 3
    for values in slopes:
        np.testing.assert_array_equal(values, np.full_like(values, 0.25))


@pytest.mark.parametrize("scale", [2, 4])
def test_equals_the_pytorch_reference_with_the_same_weights(scale):
    """benchmarks/torch_reference.py's SRVGGNetCompact (what benchmarks/video.py times
    against) computes what keras-sr's does, given keras-sr's weights in BasicSR's layout."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; CI installs it")
    from benchmarks.torch_reference import build_srvgg_compact, load_state
    from keras_sr.convert.basicsr import state_dict_of
    from tests.convert.test_ncnn import randomized

    model = randomized(SRVGGNetCompact(scale=scale, **TINY))
    reference = build_srvgg_compact(torch, scale=scale, **TINY).eval()
    load_state(reference, state_dict_of(model))
    images = random_images((2, 9, 7, 3))
    with torch.no_grad():
        # keras-sr's model ends in the clamp Real-ESRGAN applies after the network.
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).clamp(0, 1)
    expected = expected.numpy()
    np.testing.assert_allclose(model(images).numpy(), expected.transpose(0, 2, 3, 1),
                               atol=1e-5)
