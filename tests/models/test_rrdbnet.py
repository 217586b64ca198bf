import keras
import numpy as np
import pytest

from keras_sr.layers import RRDB
from keras_sr.models import RRDBNet
from tests.helpers import (
    check_config_round_trip,
    check_generator_outputs,
    check_keras_reload,
    random_images,
)

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

TINY = {"num_blocks": 1, "num_features": 8, "growth_channels": 4}


def test_default_has_the_pytorch_reference_parameter_count():
    model = RRDBNet()
    assert model.count_params() == 16_697_987
    assert sum(isinstance(layer, RRDB) for layer in model.layers) == 23


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_output_is_scale_times_input_for_odd_sizes(scale):
    check_generator_outputs(RRDBNet(scale=scale, **TINY), scale, [(37, 53), (12, 12), (9, 16)])


@pytest.mark.parametrize("scale,in_channels", [(4, 3), (2, 12), (1, 48)])
def test_small_scales_pixel_unshuffle_the_input(scale, in_channels):
    # BasicSR's x2 / x1 RRDBNets have a conv_first over 3 * 4 and 3 * 16 channels.
    model = RRDBNet(scale=scale, **TINY)
    assert model.get_layer("conv_first").kernel.shape == (3, 3, in_channels, 8)


def test_odd_sizes_at_scale_2_equal_the_reflect_padded_even_image():
    model = RRDBNet(scale=2, **TINY)
    images = random_images((1, 37, 53, 3))
    padded = np.pad(images, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="reflect")
    np.testing.assert_allclose(
        model(images), keras.ops.convert_to_numpy(model(padded))[:, :74, :106], atol=1e-6
    )


def test_block_and_feature_counts_are_configurable():
    model = RRDBNet(num_blocks=6, num_features=16, growth_channels=8)
    assert sum(isinstance(layer, RRDB) for layer in model.layers) == 6
    assert model.get_layer("conv_body").kernel.shape == (3, 3, 16, 16)


def test_config_round_trip_keeps_name_dtype_and_arguments():
    check_config_round_trip(RRDBNet, scale=2, residual_scale=0.1, **TINY)


def test_keras_file_reload_keeps_name_dtype_and_outputs(tmp_path):
    model = RRDBNet(scale=2, name="esrgan_g", dtype="float64", **TINY)
    check_keras_reload(model, random_images((1, 13, 11, 3)), tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_in_half_and_returns_float32(policy, tmp_path):
    model = RRDBNet(dtype=policy, **TINY)
    assert model.get_layer("conv_first").compute_dtype == policy.removeprefix("mixed_")
    assert model.get_layer("conv_first").kernel.dtype == "float32"
    check_generator_outputs(model, 4, [(12, 12)])
    assert model(random_images((1, 12, 12, 3))).dtype == "float32"
    check_keras_reload(model, random_images((1, 12, 12, 3)), tmp_path)


def test_global_mixed_policy_is_picked_up():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = RRDBNet(**TINY)
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model(random_images((1, 8, 8, 3))).dtype == "float32"


@pytest.mark.parametrize(
    "kwargs,message",
    [({"scale": 3}, "scale 1, 2 or 4"), ({"num_features": 0}, "num_features >= 1")],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RRDBNet(**{**TINY, **kwargs})
