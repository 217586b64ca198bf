"""keras-sr: SRGAN and ESRGAN super-resolution for TensorFlow 2 / Keras 3.

`import keras_sr` makes the public API available (`keras_sr.models`, `keras_sr.layers`,
`keras_sr.losses`, `keras_sr.metrics`, `keras_sr.trainers`, `keras_sr.presets`,
`keras_sr.precision`, `keras_sr.inference`, `keras_sr.convert`, `keras_sr.litert`) and registers
every serializable class (networks, layers, metrics, losses, schedules), so that
`keras.saving.load_model("generator.keras")` works in a fresh process after it.
"""

__version__ = "0.1.0"

from keras_sr import _quiet  # noqa: E402

_quiet.import_tensorflow_quietly()

# Imported for the API and for their registrations; order does not matter.
from keras_sr import (  # noqa: E402
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
from keras_sr.losses import adversarial, perceptual  # noqa: E402
from keras_sr.trainers import schedules  # noqa: E402

__all__ = ["adversarial", "convert", "inference", "layers", "litert", "losses", "metrics",
           "models", "perceptual", "precision", "presets", "schedules", "trainers",
           "__version__"]
