"""Checks shared by every network test (STYLE.md: shape, config round trip, reload, any H x W)."""

import keras
import numpy as np


def random_images(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def check_config_round_trip(model_class, **kwargs):
    """A non-default name and dtype survive get_config -> from_config, with every argument."""
    model = model_class(name="renamed_net", dtype="float64", **kwargs)
    config = model.get_config()
    for key, value in kwargs.items():
        assert config[key] == value, key
    clone = model_class.from_config(config)
    assert clone.name == "renamed_net"
    assert clone.dtype_policy.name == "float64"
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


def check_keras_reload(model, inputs, tmp_path):
    """A `.keras` file reloads as the same class with the same outputs, name and dtype policy."""
    path = tmp_path / f"{model.name}.keras"
    expected = keras.ops.convert_to_numpy(model(inputs))
    assert expected.dtype == model.get_layer(index=-1).dtype_policy.compute_dtype
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert restored.name == model.name
    assert restored.dtype_policy.name == model.dtype_policy.name
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored(inputs)), expected)


def check_generator_outputs(model, scale, sizes):
    """Output is `scale` times each input size, float32 (or the policy's float64), in [0, 1]."""
    for height, width in sizes:
        outputs = keras.ops.convert_to_numpy(model(random_images((2, height, width, 3))))
        assert outputs.shape == (2, height * scale, width * scale, 3)
        assert np.isfinite(outputs).all()
        assert outputs.min() >= 0.0 and outputs.max() <= 1.0
