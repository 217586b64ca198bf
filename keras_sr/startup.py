"""How keras-sr starts: what `import keras_sr` loads, and how the commands put that off until
their arguments are parsed.

`import keras_sr` imports TensorFlow and registers every serializable class (networks, layers,
metrics, losses, schedules), so that `keras.saving.load_model("generator.keras")` works right
after it; that takes a few seconds. A command should answer `--help` or a wrong argument at
once, so the entry points (`keras-sr`, `python -m training.fit`, ...) set `KERAS_SR_PARSING=1`
in their own process before they import anything from keras_sr: `keras_sr` then loads nothing
but this module, the modules the parsers need are TensorFlow-free, and the entry point calls
`load()` once its arguments are good. `load()` also sets the environment switches the commands
run with, before TensorFlow starts, keeping any value the user set; a library import sets none.
"""

import os

PARSING = "KERAS_SR_PARSING"


def parsing():
    """Whether an entry point is still parsing its arguments (see the module docstring)."""
    return os.environ.get(PARSING) == "1"


def register_everything():
    """Imports every keras-sr module that registers a serializable class (and TensorFlow)."""
    import keras_sr
    from keras_sr import (  # noqa: F401
        convert,
        inference,
        layers,
        litert,
        losses,
        metrics,
        models,
        precision,
        presets,
        trainers,
    )
    from keras_sr.losses import adversarial, perceptual
    from keras_sr.trainers import schedules

    keras_sr.adversarial, keras_sr.perceptual = adversarial, perceptual
    keras_sr.schedules = schedules


def load():
    """For entry points, once their arguments are parsed: TensorFlow imported quietly (unless
    verbose: keras_sr._quiet) and everything registered. Does nothing the second time."""
    from keras_sr import _quiet

    os.environ.pop(PARSING, None)
    _quiet.in_command = True
    _quiet.import_tensorflow_quietly()
    register_everything()
