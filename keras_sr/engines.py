"""Which engine runs a `.keras` model or preset in `keras-sr upscale`: TensorFlow, or the LiteRT
interpreter (XNNPACK) on a flatbuffer converted from it once and cached.

Where TensorFlow computes in float32 with its Eigen kernels (oneDNN off, as on every AVX2-only
CPU), XNNPACK ran realesrgan-x4plus 1.2-1.3x faster than TensorFlow (BENCHMARKS.md, "Engines");
where TensorFlow computes bfloat16 (oneDNN on a CPU with AVX512_BF16 or AMX) or on a GPU, it is
the faster one. `auto` therefore:

- keeps TensorFlow on a GPU, where the chosen precision is not float32, and where ai-edge-litert
  is not installed;
- otherwise times both on a 64 x 64 crop of a bundled photo (median of 3 after a warm-up) and
  takes the faster, unless LiteRT's output is below the precision guard's MIN_PSNR_DB from
  TensorFlow's. The verdict is cached per model file, CPU, TensorFlow and LiteRT versions and
  thread count (`$KERAS_SR_CACHE/engines.json`), like the precision guard's, so only the first
  run pays the measurement.

The converted flatbuffer (float32, dynamic batch and size, builtin ops) is cached as
`$KERAS_SR_CACHE/litert/<digest>.tflite`, keyed by the `.keras` file (path, size, mtime) and the
TensorFlow version; about the size of the float32 weights (67 MB for a 23-block RRDBNet), and
converting one takes about 26 s on a 2-core CPU.
"""

import hashlib
import json
import os
import statistics
import time

ENGINES = ("auto", "tensorflow", "litert")
TENSORFLOW, LITERT = "TensorFlow", "LiteRT/XNNPACK"
MEASURE_SIZE = 64
MEASURE_REPEATS = 3


def default_threads():
    """The cores this process may run on: XNNPACK's thread count when none is given."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def litert_available():
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def load(spec, engine="auto", precision="auto", num_threads=None, device=None, log=None):
    """An `inference.Upscaler` for `--model spec` on `engine`, with `upscaler.engine` and
    `upscaler.engine_reason` saying which ran and why (`precision` and `precision_reason` as
    `inference.load_upscaler` sets them).

    Raises:
        ValueError: for an engine that cannot run this model or precision.
        presets.ModelFileError: naming the model, when it is missing or does not load.
    """
    from keras_sr import inference
    from keras_sr import precision as precisions

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    inference.check_model_spec(spec)
    if not inference.is_keras_model(spec):
        tflite = os.fspath(spec).endswith(".tflite")
        if engine == "litert" and not tflite:
            raise ValueError(f"--engine litert runs .keras models, weights files and presets; "
                             f"{spec} is a SavedModel, which runs in TensorFlow")
        if engine == "tensorflow" and tflite:
            raise ValueError(f"--engine tensorflow runs .keras models, weights files, presets "
                             f"and SavedModels; {spec} runs in LiteRT")
        threads = num_threads or (default_threads() if tflite else None)
        upscaler = inference.load_upscaler(spec, num_threads=threads, precision=precision)
        upscaler.engine = _litert_name(threads) if tflite else TENSORFLOW
        upscaler.engine_reason = "the model file's own"
        return upscaler
    if engine == "litert":
        if precision not in ("auto", "float32"):
            raise ValueError(f"--engine litert computes in float32; --precision {precision} "
                             "is TensorFlow's (--engine tensorflow)")
        return _litert_upscaler(spec, num_threads, "--engine litert")
    device = device or precisions.Device.current()
    chosen, _ = precisions.resolve(precision, device)
    why_tensorflow = None
    if engine == "tensorflow":
        why_tensorflow = "--engine tensorflow"
    elif device.gpu_capabilities:
        why_tensorflow = "a GPU runs it"
    elif chosen != "float32":
        why_tensorflow = f"{chosen} runs in TensorFlow on this CPU"
    elif not litert_available():
        why_tensorflow = "ai-edge-litert is not installed (pip install 'keras-sr[litert]')"
    if why_tensorflow:
        return _tensorflow_upscaler(spec, num_threads, precision, why_tensorflow)
    return _measured(spec, num_threads, precision, log)


def _tensorflow_upscaler(spec, num_threads, precision, reason):
    from keras_sr import inference

    upscaler = inference.load_upscaler(spec, num_threads=num_threads, precision=precision)
    upscaler.engine, upscaler.engine_reason = TENSORFLOW, reason
    return upscaler


def _litert_upscaler(spec, num_threads, reason, model_key=None, convert=True):
    """LiteRT over `spec`'s flatbuffer, converted now where the cache has none or one that
    does not load; with `convert=False` None instead of converting (that needs TensorFlow)."""
    from keras_sr import inference

    threads = num_threads or default_threads()
    flatbuffer, cached, bytes_per_pixel = converted(spec, model_key)
    try:
        upscaler = inference.flatbuffer_upscaler(flatbuffer, os.fspath(spec), threads)
    except (MemoryError, ImportError):
        raise
    except Exception:  # noqa: BLE001 - a cache entry that does not load is made again
        if not cached:
            raise
        os.remove(cached)
        if not convert:
            return None
        flatbuffer, _, bytes_per_pixel = converted(spec, model_key)
        upscaler = inference.flatbuffer_upscaler(flatbuffer, os.fspath(spec), threads)
    upscaler.bytes_per_pixel = bytes_per_pixel
    upscaler.precision, upscaler.precision_reason = "float32", "LiteRT computes in float32"
    upscaler.engine = _litert_name(threads)
    upscaler.engine_reason = reason
    return upscaler


def _litert_name(threads):
    return f"{LITERT} on {threads} thread{'s' if threads > 1 else ''}"


def _model_key(spec):
    """What a converted flatbuffer and a measured verdict depend on: the file holding the
    weights (its path, size and mtime; a preset's or weights file's cached `.keras`) and the
    TensorFlow version."""
    import tensorflow as tf

    from keras_sr import presets

    if presets.is_remote(spec):
        spec = presets.fetch_remote(spec)
    if os.path.isdir(spec):
        path = os.path.join(spec, presets.WEIGHTS_FILE)
    else:
        path = presets.keras_path(spec)  # a preset or weights file: converted on first use
    return _file_key(path, tf.__version__)


def _file_key(path, tensorflow_version):
    stat = os.stat(path)
    return "|".join([os.path.abspath(path), str(stat.st_size), str(stat.st_mtime_ns),
                     tensorflow_version])


def installed_tensorflow_version():
    """TensorFlow's version as its package says, without importing it (None when no package
    by a known name holds it); for a release, what `tf.__version__` says."""
    from importlib import metadata

    for name in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _flatbuffer_path(model_key):
    from keras_sr import presets

    digest = hashlib.sha256(model_key.encode()).hexdigest()[:20]
    return os.path.join(presets.cache_dir(), "litert", f"{digest}.tflite")


def load_without_tensorflow(spec, engine="auto", precision="auto", num_threads=None):
    """What `load` returns where that is LiteRT and finding it out needs no TensorFlow (whose
    start is ~3 s of a command on a 2-core CPU: importing TensorFlow and Keras), else None:
    a `.tflite` model, or a `.keras` model or preset (weights on disk: presets.weights_on_disk)
    whose flatbuffer is cached, with `--engine litert` or with `auto` on a machine where no GPU
    can be (precision.gpu_possible), `auto` precision is float32 and the cached verdict for
    this model, CPU and thread count is LiteRT. None too when TensorFlow has started already.
    """
    import sys

    from keras_sr import precision as precisions
    from keras_sr import presets
    from keras_sr.atomic import read_entry

    if ("tensorflow" in sys.modules or engine not in ("auto", "litert")
            or precision not in ("auto", "float32") or not litert_available()):
        return None
    if os.fspath(spec).endswith(".tflite"):
        return load(spec, engine, precision, num_threads)
    # Before the weights are looked for: an offline preset tries a fetch there.
    if engine == "auto" and (precisions.gpu_possible()
                             or precisions.resolve(precision)[0] != "float32"):
        return None
    weights, version = presets.weights_on_disk(spec), installed_tensorflow_version()
    if weights is None or version is None:
        return None
    model_key = _file_key(weights, version)
    if not os.path.isfile(_flatbuffer_path(model_key)):
        return None
    threads = num_threads or default_threads()
    if engine == "litert":
        return _litert_upscaler(spec, threads, "--engine litert", model_key, convert=False)
    verdict = read_entry(_verdicts_path(), _verdict_key(model_key, threads))
    if not verdict or verdict.get("engine") != "litert":
        return None
    return _litert_upscaler(spec, threads, _verdict_reason(verdict, False), model_key,
                            convert=False)


def converted(spec, model_key=None):
    """`(flatbuffer bytes, cache path or None, activation bytes per LR pixel or None)`: the
    LiteRT flatbuffer of `spec` (float32, dynamic size), read from the cache, or converted now
    and cached, written whole or not at all, with its tile costing
    (`inference.activation_bytes`, beside it as `<digest>.json`); a cache that cannot be
    written costs the next run the conversion again. The cache path is None when the bytes
    were converted now. `model_key` is `_model_key(spec)` where the caller has it already.

    Raises:
        ValueError: naming the model, when it does not convert with builtin ops only.
    """
    from keras_sr import inference, litert, presets
    from keras_sr.atomic import write_bytes
    from keras_sr.precision import with_precision

    path = _flatbuffer_path(model_key or _model_key(spec))
    costing = os.path.splitext(path)[0] + ".json"
    try:
        with open(path, "rb") as file:
            flatbuffer = file.read()
        try:
            with open(costing) as file:
                bytes_per_pixel = json.load(file)["bytes_per_pixel"]
        except (OSError, ValueError, KeyError):
            bytes_per_pixel = None
        return flatbuffer, path, bytes_per_pixel
    except OSError:
        pass
    model = with_precision(presets.load_model(spec), "float32")
    scale = getattr(model, "scale", None)
    bytes_per_pixel = inference.activation_bytes(model, scale) if scale else None
    with litert.converter(model) as converter:
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises its own ConverterError type
            raise ValueError(litert.conversion_failure(model.name, str(error))) from error
    try:
        write_bytes(costing, json.dumps({"bytes_per_pixel": bytes_per_pixel}).encode())
        write_bytes(path, flatbuffer)
    except OSError:
        pass
    return flatbuffer, None, bytes_per_pixel


def _verdicts_path():
    from keras_sr.presets import cache_dir

    return os.path.join(cache_dir(), "engines.json")


def _verdict_key(model_key, threads):
    from importlib import metadata

    from keras_sr.precision import cpu_name

    return "|".join([model_key, cpu_name(), f"litert {metadata.version('ai-edge-litert')}",
                     f"{threads} threads"])


def median_seconds(run_once, repeats=MEASURE_REPEATS):
    """The median time of `run_once()` over `repeats` calls after one warm-up (tracing,
    allocation, XNNPACK's weight packing)."""
    run_once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(tensorflow_upscaler, litert_upscaler, image):
    """`{engine, tensorflow_s, litert_s, psnr_db}`: both upscalers timed on `image`; LiteRT is
    chosen when it is faster and its output within the precision guard of TensorFlow's."""
    from keras_sr.precision import MIN_PSNR_DB, psnr_against

    tensorflow_s = median_seconds(lambda: tensorflow_upscaler(image))
    litert_s = median_seconds(lambda: litert_upscaler(image))
    psnr_db = float(psnr_against(tensorflow_upscaler(image), litert_upscaler(image)))
    faster = litert_s < tensorflow_s and psnr_db >= MIN_PSNR_DB
    return {"engine": "litert" if faster else "tensorflow", "tensorflow_s": tensorflow_s,
            "litert_s": litert_s, "psnr_db": psnr_db}


def _verdict_reason(verdict, measured_now):
    from keras_sr.precision import MIN_PSNR_DB

    if "unconvertible" in verdict:
        return f"LiteRT cannot run it: {verdict['unconvertible']}"
    timings = (f"on a {MEASURE_SIZE} x {MEASURE_SIZE} tile here LiteRT took "
               f"{verdict['litert_s']:.3f} s, TensorFlow {verdict['tensorflow_s']:.3f} s "
               f"({'timed now' if measured_now else 'timed once'}, kept in "
               "$KERAS_SR_CACHE/engines.json)")
    if verdict["psnr_db"] < MIN_PSNR_DB:
        return (f"LiteRT's output is {verdict['psnr_db']:.1f} dB from TensorFlow's, below the "
                f"{MIN_PSNR_DB:g} dB guard; {timings}")
    return f"the faster: {timings}"


def _measured(spec, num_threads, precision, log):
    from keras_sr.atomic import read_entry, store_entry
    from keras_sr.precision import guard_image

    threads = num_threads or default_threads()
    model_key = _model_key(spec)
    key = _verdict_key(model_key, threads)
    verdict = read_entry(_verdicts_path(), key)
    if verdict:
        if verdict["engine"] == "litert":
            return _litert_upscaler(spec, threads, _verdict_reason(verdict, False), model_key)
        return _tensorflow_upscaler(spec, num_threads, precision, _verdict_reason(verdict, False))
    if log:
        log("keras-sr: timing TensorFlow and LiteRT on this model once (converting it to "
            "LiteRT first); later runs reuse the verdict")
    tensorflow_upscaler = _tensorflow_upscaler(spec, num_threads, precision, "")
    try:
        litert_upscaler = _litert_upscaler(spec, threads, "", model_key)
    except ValueError as failure:  # a model that needs ops outside TFLite's builtins
        verdict = {"engine": "tensorflow", "unconvertible": str(failure)}
        store_entry(_verdicts_path(), key, verdict)
        tensorflow_upscaler.engine_reason = _verdict_reason(verdict, True)
        return tensorflow_upscaler
    verdict = compare(tensorflow_upscaler, litert_upscaler, guard_image(MEASURE_SIZE))
    store_entry(_verdicts_path(), key, verdict)
    chosen = litert_upscaler if verdict["engine"] == "litert" else tensorflow_upscaler
    chosen.engine_reason = _verdict_reason(verdict, True)
    return chosen
