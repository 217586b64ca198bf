"""Checks shared by every network test (STYLE.md: shape, config round trip, reload, any H x W)."""

import keras
import numpy as np


def traced_calls(monkeypatch, module, name, argument):
    """A list that gets the shape of argument number `argument` of each call of
    `module.name` (wrapped for the test): which shapes a layer traced on a path."""
    calls = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(args[argument].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


# The start of a script that compares a GAN's steps on two replicas with one device's, run in a
# process of its own (collective keys clash between runs in one process): two logical CPUs,
# and `fit_two_steps(strategy, networks, make_trainer, start, lr, hr)`, which builds the
# networks in the strategy's scope, loads `start` into them, makes the trainer from them,
# and fits two SGD(0.05) steps of half the batch each: (trainer, the logged losses).
TWO_REPLICAS_SCRIPT = """
import json, sys
import keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def fit_two_steps(strategy, networks, make_trainer, start, lr, hr):
    with strategy.scope():
        models = networks()
        for model, weights in zip(models, start):
            model.set_weights(weights)
        trainer = make_trainer(*models)
        g_opt, d_opt = keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05)
        g_opt.build(trainer.generator.trainable_variables)
        d_opt.build(trainer.discriminator.trainable_variables)
        trainer.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=False)
    data = tf.data.Dataset.from_tensor_slices(([lr, lr[::-1]], [hr, hr[::-1]]))
    history = trainer.fit(data, epochs=1, verbose=0).history
    return trainer, {name: float(values[-1]) for name, values in history.items()}


ONE_DEVICE = tf.distribute.OneDeviceStrategy("/cpu:0")
TWO_REPLICAS = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
"""


def run_two_replica_script(body, *args):
    """Runs `TWO_REPLICAS_SCRIPT` + `body` (dedented) in a new Python with `args`; returns
    the JSON its last line prints."""
    import json
    import subprocess
    import sys
    import textwrap

    script = TWO_REPLICAS_SCRIPT + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


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
