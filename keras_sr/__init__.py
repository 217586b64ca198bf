"""keras-sr: SRGAN and ESRGAN super-resolution for TensorFlow 2 / Keras 3.

`import keras_sr` makes the public API available (`keras_sr.models`, `keras_sr.layers`,
`keras_sr.losses`, `keras_sr.metrics`, `keras_sr.trainers`, `keras_sr.presets`,
`keras_sr.precision`, `keras_sr.inference`, `keras_sr.convert`, `keras_sr.litert`) and registers
every serializable class (networks, layers, metrics, losses, schedules), so that
`keras.saving.load_model("generator.keras")` works in a fresh process after it. (The commands
put this off until their arguments are parsed: keras_sr.startup.)
"""

__version__ = "0.1.0"
__all__ = ["adversarial", "convert", "inference", "layers", "litert", "losses", "metrics",
           "models", "perceptual", "precision", "presets", "schedules", "trainers",
           "__version__"]

from keras_sr import startup  # noqa: E402  (TensorFlow-free)

if not startup.parsing():
    startup.register_everything()
