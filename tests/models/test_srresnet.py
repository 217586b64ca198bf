import keras
import pytest

from keras_sr.layers import PixelShuffle, ResidualBlock
from keras_sr.models import SRResNet
from tests.helpers import (
    check_config_round_trip,
    check_generator_outputs,
    check_keras_reload,
    random_images,
)

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

TINY = {"num_blocks": 2, "num_features": 8}


def test_default_follows_srgan_figure_4():
    model = SRResNet()
    assert sum(isinstance(layer, ResidualBlock) for layer in model.layers) == 16
    assert model.get_layer("conv_first").kernel.shape == (9, 9, 3, 64)
    assert model.get_layer("conv_last").kernel.shape == (9, 9, 64, 3)
    assert [layer.upscale_factor for layer in model.layers if isinstance(layer, PixelShuffle)] \
        == [2, 2]
    assert model.get_layer("conv_up1").kernel.shape == (3, 3, 64, 256)
    # Per-channel PReLU slopes shared over space, so any H x W works.
    assert model.get_layer("prelu_first").alpha.shape == (1, 1, 64)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_scale_times_input_for_odd_sizes(scale):
    check_generator_outputs(SRResNet(scale=scale, **TINY), scale, [(37, 53), (12, 12)])


def test_scale_3_uses_one_x3_shuffle():
    model = SRResNet(scale=3, **TINY)
    assert [layer.upscale_factor for layer in model.layers if isinstance(layer, PixelShuffle)] \
        == [3]


def test_config_round_trip_keeps_name_dtype_and_arguments():
    check_config_round_trip(SRResNet, scale=3, **TINY)


def test_keras_file_reload_keeps_name_dtype_and_outputs(tmp_path):
    model = SRResNet(scale=2, name="srgan_g", dtype="float64", **TINY)
    # Move the BN statistics off their defaults so a reload that lost them would show.
    for layer in model.layers:
        for variable in layer.non_trainable_weights:
            variable.assign(keras.random.uniform(variable.shape, 0.5, 1.5))
    check_keras_reload(model, random_images((1, 13, 11, 3)), tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_returns_float32_in_unit_range(policy):
    model = SRResNet(dtype=policy, **TINY)
    assert model.get_layer("conv_first").compute_dtype == policy.removeprefix("mixed_")
    check_generator_outputs(model, 4, [(12, 12)])
    assert model(random_images((1, 12, 12, 3))).dtype == "float32"


def test_bad_scale_is_named():
    with pytest.raises(ValueError, match="scale 2, 3 or 4, got scale=8"):
        SRResNet(scale=8)
