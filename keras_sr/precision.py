"""Which precision a model runs at: `float32`, `bfloat16` or `float16` (Keras' `mixed_*`
policies: half-precision compute, float32 weights, inputs and outputs), or `auto`, which picks
the fastest one that keeps quality on the device at hand:

- GPU: bfloat16 on compute capability 8.0 and above (Ampere, Hopper), float16 below (with loss
  scaling when training).
- CPU: bfloat16 where the CPU computes it natively (AVX512_BF16 or AMX-BF16, read from its
  flags) and TensorFlow's oneDNN kernels, which use those instructions, are on; else float32
  (bfloat16 emulated in float32 is slower than float32), and float32 where oneDNN is held
  below its bfloat16 kernels (`ONEDNN_MAX_CPU_ISA=AVX2`, say, to emulate an AVX2-only CPU).
- A reduced precision that would take a model below `MIN_PSNR_DB` from its float32 output on
  a real photo falls back to float32 (`choose_for_model`).

`resolve` says why it chose as it did; entry points print that line.

Example:
>>> precision, reason = keras_sr.precision.resolve("auto")
>>> fast = keras_sr.precision.with_precision(model, precision)
"""

import dataclasses
import os
import platform

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# Quality guard: PSNR (dB, [0, 1] images) of a reduced-precision output against float32.
MIN_PSNR_DB = 45.0
# TensorFlow turns oneDNN on by default on x86 Linux CPUs with any of these (TF 2.21), and on
# Linux on Arm's Neoverse V1 (AWS Graviton 3; DefaultOneDnnPolicy in its core/util/port.cc).
ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16",
                        "amx_int8")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN's instruction-set cap (ONEDNN_MAX_CPU_ISA, formerly DNNL_MAX_CPU_ISA), read when it
# starts: below AVX512_CORE_BF16 it has no bfloat16 convolution and fails to create one.
ONEDNN_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE",
                            "AVX512_CORE_VNNI")


def policy(precision):
    """The Keras dtype policy name of a precision (`mixed_*` names pass through)."""
    if precision in POLICIES.values():
        return precision
    try:
        return POLICIES[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}") from None


def _cpuinfo(field):
    """The first value of `field` in /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags():
    """The CPU's feature flags (lower case) from /proc/cpuinfo; empty where there is none."""
    return frozenset((_cpuinfo("flags") or "").split())


def cpu_name():
    return _cpuinfo("model name") or platform.processor() or platform.machine()


# TensorFlow's switch for its oneDNN kernels, read when TensorFlow starts.
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def x86_linux():
    """Whether this is x86 Linux: where TensorFlow's pip builds carry oneDNN."""
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


# /proc/cpuinfo's "CPU implementer" and "CPU part" of an Arm Neoverse V1.
NEOVERSE_V1 = ("0x41", "0xd40")


def arm_neoverse_v1():
    """Whether this is Linux on an Arm Neoverse V1 core."""
    return (platform.system() == "Linux" and platform.machine() in ("aarch64", "arm64")
            and (_cpuinfo("CPU implementer"), _cpuinfo("CPU part")) == NEOVERSE_V1)


def onednn_isa_cap(environ=None):
    """oneDNN's instruction-set cap as the user set it (upper case), or "" where none is set."""
    environ = os.environ if environ is None else environ
    for variable in ONEDNN_ISA_VARIABLES:
        if environ.get(variable, "").strip():
            return environ[variable].strip().upper()
    return ""


# The values TensorFlow reads TF_ENABLE_ONEDNN_OPTS as (any case, nothing around them); it
# ignores any other value, keeping its default, with a log line commands hide.
ONEDNN_SETTINGS = {"1": True, "true": True, "0": False, "false": False}


def onednn_setting(environ=None):
    """TF_ENABLE_ONEDNN_OPTS as TensorFlow reads it: True or False, or None where it is unset
    or a value TensorFlow ignores (see ignored_onednn_setting)."""
    environ = os.environ if environ is None else environ
    return ONEDNN_SETTINGS.get(environ.get(ONEDNN_VARIABLE, "").lower())


def ignored_onednn_setting(environ=None):
    """The value of TF_ENABLE_ONEDNN_OPTS where it is set to one TensorFlow ignores ("yes",
    " 1"), else None."""
    environ = os.environ if environ is None else environ
    value = environ.get(ONEDNN_VARIABLE)
    return value if value is not None and onednn_setting(environ) is None else None


def onednn_enabled(flags=None, environ=None):
    """Whether TensorFlow runs its oneDNN kernels here: `TF_ENABLE_ONEDNN_OPTS` where it is set
    to a value TensorFlow reads, else TensorFlow's own default (on for x86 Linux CPUs with the
    flags in ONEDNN_DEFAULT_FLAGS, and for Linux on an Arm Neoverse V1)."""
    setting = onednn_setting(environ)
    if setting is not None:
        return setting
    flags = cpu_flags() if flags is None else flags
    return (x86_linux() and any(flag in flags for flag in ONEDNN_DEFAULT_FLAGS)
            or arm_neoverse_v1())


# Device nodes through which TensorFlow reaches a GPU on Linux: NVIDIA's driver, ROCm's, and
# WSL's (DirectML).
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_possible():
    """Whether TensorFlow could find a GPU here, told without starting it: anywhere but Linux
    (Metal and other plugins), and on Linux where a GPU driver's device node exists."""
    if platform.system() != "Linux":
        return True
    return any(os.path.exists(node) for node in GPU_DEVICE_NODES)


class IgnoredSettingWarning(UserWarning):
    """An environment switch set to a value the library that reads it ignores."""


def warn_of_ignored_onednn_setting(environ=None, flags=None):
    """A warning naming TF_ENABLE_ONEDNN_OPTS where it is set to a value TensorFlow ignores,
    and what TensorFlow does instead (`flags`: the CPU's, read when None)."""
    value = ignored_onednn_setting(environ)
    if value is not None:
        import warnings

        state = "on" if onednn_enabled(flags, environ) else "off"
        warnings.warn(f"{ONEDNN_VARIABLE}={value!r} is not 0, 1, true or false, so TensorFlow "
                      f"ignores it and keeps its default here: oneDNN {state}",
                      IgnoredSettingWarning, stacklevel=2)


@dataclasses.dataclass(frozen=True)
class Device:
    """What `auto` looks at: GPUs' compute capabilities (empty on a CPU-only machine), the CPU
    flags and whether oneDNN is on."""

    gpu_capabilities: tuple = ()
    cpu_flags: frozenset = frozenset()
    onednn: bool = False
    gpu_names: tuple = ()
    onednn_isa: str = ""  # oneDNN's instruction-set cap (onednn_isa_cap), "" for none

    @classmethod
    def current(cls):
        """This machine; TensorFlow is asked for its GPUs unless it has not started and no GPU
        can be there (gpu_possible), which a command that runs without it relies on."""
        import sys

        capabilities, names = [], []
        if "tensorflow" in sys.modules or gpu_possible():
            import tensorflow as tf

            for gpu in tf.config.list_physical_devices("GPU"):
                details = tf.config.experimental.get_device_details(gpu)
                capabilities.append(tuple(details.get("compute_capability", (0, 0))))
                names.append(details.get("device_name", gpu.name))
        flags = cpu_flags()
        return cls(tuple(capabilities), flags, onednn_enabled(flags), tuple(names),
                   onednn_isa_cap())

    def describe(self):
        """What runs the model, for the one line every command prints."""
        if self.gpu_capabilities:
            names = sorted(set(self.gpu_names)) or ["GPU"]
            return f"{len(self.gpu_capabilities)} x {' / '.join(names)}"
        return f"CPU ({cpu_name()}, {os.cpu_count()} cores)"


def describe_device(device=None):
    return (device or Device.current()).describe()


def resolve(precision="auto", device=None):
    """`(precision, reason)`: `precision` itself unless it is `auto`, which is chosen per
    device as this module's docstring says; `reason` is one line for the user."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision, "as asked"
    device = device or Device.current()
    if device.gpu_capabilities:
        lowest = min(device.gpu_capabilities)
        if lowest >= (8, 0):
            return "bfloat16", f"GPU compute capability {lowest[0]}.{lowest[1]} computes bfloat16"
        return "float16", (f"GPU compute capability {lowest[0]}.{lowest[1]} has no fast "
                           "bfloat16; float16 instead")
    native = sorted(flag for flag in NATIVE_BF16_FLAGS if flag in device.cpu_flags)
    if native and device.onednn and device.onednn_isa in ONEDNN_ISAS_WITHOUT_BF16:
        return "float32", (f"the CPU has {', '.join(native)} but oneDNN is held to "
                           f"{device.onednn_isa} (ONEDNN_MAX_CPU_ISA), which has no bfloat16")
    if native and device.onednn:
        return "bfloat16", f"the CPU computes bfloat16 natively ({', '.join(native)}, oneDNN on)"
    if native:
        return "float32", (f"the CPU has {', '.join(native)} but TensorFlow's oneDNN is off "
                           "(TF_ENABLE_ONEDNN_OPTS=0)")
    return "float32", "the CPU has no native bfloat16 (no AVX512_BF16 or AMX)"


def with_precision(model, precision):
    """`model` computing at `precision` (a precision name or a Keras policy): the model itself
    when it already does, else a clone under that dtype policy with the same (float32)
    weights. Works for keras-sr's networks and for any functional Keras model."""
    import keras

    target = policy(precision)
    if model.dtype_policy.name == target:
        return model
    config = model.get_config()
    if "dtype" in config and type(model).__module__.startswith("keras_sr."):
        # keras-sr's networks apply a `dtype` argument to every layer they build.
        clone = type(model).from_config({**config, "dtype": target})
    else:
        clone = keras.models.clone_model(model, clone_function=lambda layer: type(
            layer).from_config({**layer.get_config(), "dtype": target}))
    clone.set_weights(model.get_weights())
    return clone


def psnr_against(reference, output):
    """PSNR (dB) of `output` against `reference`, both [0, 1] images (clipped)."""
    import numpy as np

    reference = np.clip(np.asarray(reference, np.float64), 0.0, 1.0)
    output = np.clip(np.asarray(output, np.float64), 0.0, 1.0)
    mse = float(np.mean((reference - output) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def guard_image(size=48):
    """A `size` x `size` crop of a bundled photo, float32 [0, 1], `(1, H, W, 3)`: what the
    quality guard runs both precisions on."""
    from importlib import resources

    import numpy as np

    from keras_sr.data.images import read_image

    image = read_image(str(resources.files("keras_sr.data") / "samples" / "astronaut.png"))
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[None, top:top + size, left:left + size].astype(np.float32) / 255.0


def _load_as(path, target):
    """A keras-sr network from a `.keras` file, built directly under the dtype policy
    `target` (the archive's config is rewritten in a temporary copy), so that a reduced
    precision costs no second build; None for models that are not keras-sr's networks."""
    import json
    import tempfile
    import zipfile

    import keras

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        if not str(config.get("registered_name", "")).startswith("keras_sr>") \
                or "dtype" not in config.get("config", {}):
            return None
        config["config"]["dtype"] = target
        with tempfile.TemporaryDirectory(prefix="keras_sr_precision_") as folder:
            copy = os.path.join(folder, "model.keras")
            with zipfile.ZipFile(copy, "w") as rewritten:
                for info in archive.infolist():
                    rewritten.writestr(info, json.dumps(config) if info.filename ==
                                       "config.json" else archive.read(info))
            return keras.saving.load_model(copy, compile=False)


def _guard_key(path, chosen):
    import tensorflow as tf

    stat = os.stat(path)
    return "|".join([os.path.abspath(path), str(stat.st_size), str(stat.st_mtime_ns), chosen,
                     tf.__version__, cpu_name()])


def _guard_cache_path():
    from keras_sr.presets import cache_dir

    return os.path.join(cache_dir(), "precision_guard.json")


def _load_reduced(spec, path, chosen):
    """The model of `spec` at the reduced precision `chosen`, built once when it can be."""
    import zipfile

    from keras_sr import presets

    target = policy(chosen)
    if os.path.isfile(path) and zipfile.is_zipfile(path):
        try:
            model = _load_as(path, target)
        except Exception:  # noqa: BLE001 - presets.load_model below names the problem
            model = None
        if model is not None:
            return model
    return with_precision(presets.load_model(spec), chosen)


def load_model(spec, precision="auto", device=None):
    """`(model, precision, reason)` for a `.keras` file or preset at `precision`, as
    `choose_for_model` decides, but the guard's verdict for `auto` is cached per model file,
    TensorFlow version and CPU (`$KERAS_SR_CACHE/precision_guard.json`), and keras-sr networks
    are built directly at the chosen precision: a later run pays neither the float32 model nor
    the guard (about 2 s of a 23-block RRDBNet's cold start on a 2-core CPU)."""
    from keras_sr import presets
    from keras_sr.atomic import read_entry, store_entry

    chosen, reason = resolve(precision, device)
    if chosen == "float32":
        return with_precision(presets.load_model(spec), "float32"), chosen, reason
    path = presets.keras_path(spec)
    if precision != "auto":
        return _load_reduced(spec, path, chosen), chosen, reason
    model = reduced = None
    key = _guard_key(path, chosen) if os.path.isfile(path) else None
    quality = read_entry(_guard_cache_path(), key) if key else None
    if quality is None:
        model = presets.load_model(spec)
        reduced = with_precision(model, chosen)
        quality = _quality(model, reduced)
        if key:
            store_entry(_guard_cache_path(), key, quality)
    if quality < MIN_PSNR_DB:
        return (with_precision(model or presets.load_model(spec), "float32"), "float32",
                _below_guard(chosen, quality))
    return (reduced or _load_reduced(spec, path, chosen), chosen,
            f"{reason}; {quality:.1f} dB from float32")


def _quality(model, reduced, image=None):
    image = guard_image() if image is None else image
    return psnr_against(model(image, training=False), reduced(image, training=False))


def _below_guard(chosen, quality):
    return (f"{chosen} would be {quality:.1f} dB from float32 on this model, below the "
            f"{MIN_PSNR_DB:g} dB guard")


def choose_for_model(model, precision="auto", device=None, image=None):
    """`(model at the chosen precision, precision, reason)`. For `auto`, a reduced precision
    is kept only if the model's output on a real photo stays within MIN_PSNR_DB of float32;
    an explicit precision is used as asked."""
    chosen, reason = resolve(precision, device)
    if chosen == "float32":
        return with_precision(model, "float32"), chosen, reason
    reduced = with_precision(model, chosen)
    if precision != "auto":
        return reduced, chosen, reason
    quality = _quality(model, reduced, image)
    if quality < MIN_PSNR_DB:
        return with_precision(model, "float32"), "float32", _below_guard(chosen, quality)
    return reduced, chosen, f"{reason}; {quality:.1f} dB from float32"
