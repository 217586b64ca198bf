"""Precision on this machine, in one run: what `auto` picks and why, inference and training
speed at float32 and bfloat16 against ncnn, TFLite and PyTorch, the quality guard, cold start
and oneDNN.

    python -m benchmarks.precision [--sizes 64 128 256] [--repeats 3] [--threads 2]
        [--train-steps 5] [--skip-train] [--skip-cold-start] [--json OUT]

1. The CPU, its relevant flags (AMX, AVX512_BF16, AVX512_VNNI, AVX2), whether TensorFlow's
   oneDNN is on, and `keras_sr.precision.resolve("auto")`.
2. Inference of the published realesrgan-x4plus (RRDBNet x4, 23 blocks) on a crop of a bundled
   photo per LR size: Keras float32, Keras bfloat16, TFLite float32 (XNNPACK) and ncnn float32
   (the same ncnn files), each the median of `--repeats` after a warm-up, with its ratio to
   ncnn and its PSNR against Keras float32 (TFLite when `ai_edge_litert` is installed).
3. The quality guard: bfloat16 against float32 PSNR of realesrgan-x4plus and
   realesr-animevideov3-x4 (SRVGGNetCompact) on the four bundled photos (64 x 64 crops).
4. Training steps of rrdb_psnr_x4 and esrgan_x4 (batch 4, HR 128; `benchmarks.train_step`, each
   in its own process) at float32 and bfloat16, and the same steps in PyTorch float32
   (`benchmarks.torch_reference`) when PyTorch is importable.
5. Cold start: `keras-sr upscale` of one 64 x 64 image with realesrgan-x4plus in a fresh
   process (import, model load, trace, run) in TensorFlow (`--engine tensorflow`; LiteRT's:
   `benchmarks.engines`), float32, bfloat16 and auto (its guard verdict cached by a first run),
   the median of three.
6. oneDNN: Keras float32 inference (LR sizes up to 128) in a fresh process with TensorFlow's
   default, oneDNN off, on, and on capped at AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`). Off and capped
   are what a CPU without AVX512_VNNI / AVX512_BF16 / AVX_VNNI / AMX would run with oneDNN off
   (TensorFlow's default there) and on.
7. Serving: realesrgan-x4plus exported with `export.saved_model` at float32 and at bfloat16,
   `serving_default` at LR 64 and 128: median time and the bfloat16 export's PSNR against the
   float32 one.

`--sections` runs a subset (default: all, in this order).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.inference import median_seconds  # noqa: E402
from benchmarks.pretrained import photo_crop  # noqa: E402
from keras_sr import precision as precisions  # noqa: E402

FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f",
         "avx_vnni", "avx2")
PRESET = "realesrgan-x4plus"


# The environment variables that choose the kernels and forms a benchmark measures.
SWITCHES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_CPU_ALLOCATOR_USE_BFC",
            "KERAS_SR_CONV_WEIGHT_GRADIENT", "KERAS_SR_DENSE_BLOCK")


def switch_settings(environ=None):
    """`SWITCHES` as this process has them, "NAME=value" joined by spaces (unset ones left
    out), or "none": for a benchmark's header."""
    environ = os.environ if environ is None else environ
    return " ".join(f"{name}={environ[name]}" for name in SWITCHES if name in environ) or "none"


def machine():
    flags = precisions.cpu_flags()
    chosen, reason = precisions.resolve("auto")
    # The cores this process may use (a `taskset` pins fewer than os.cpu_count()).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": precisions.cpu_name(), "cores": cores,
            "flags": {flag: flag in flags for flag in FLAGS},
            "onednn": precisions.onednn_enabled(flags),
            "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)"),
            "auto": chosen, "auto_reason": reason}


def inference_rows(sizes, repeats, threads):
    import tensorflow as tf

    from export import tflite
    from keras_sr import presets
    from keras_sr.convert import ncnn

    model = presets.load_model(PRESET)
    reduced = precisions.with_precision(model, "bfloat16")
    serve32 = tf.function(lambda lr_images: model(lr_images, training=False))
    serve16 = tf.function(lambda lr_images: reduced(lr_images, training=False))
    reference = ncnn.reference_runner(*presets.source_files(PRESET), num_threads=threads)
    runs = {"keras_float32": lambda x: serve32(x).numpy(),
            "keras_bfloat16": lambda x: serve16(x).numpy(),
            "ncnn_float32": lambda x: reference(x[0])[None]}
    try:  # the TFLite column when the LiteRT runtime is installed (keras-sr[litert])
        interpreter = tflite.interpreter(tflite.convert(model), num_threads=threads)
        runs["tflite_float32"] = lambda x: tflite.run(interpreter, x)
    except ImportError as error:
        print(f"no TFLite column: {error}")
    rows = []
    for size in sizes:
        image = photo_crop(size)[None]
        expected = np.clip(runs["keras_float32"](image), 0, 1)
        row = {"lr_size": size}
        for name, run in runs.items():
            row[f"{name}_s"] = median_seconds(lambda: run(image), repeats)
            row[f"{name}_psnr_db"] = precisions.psnr_against(expected, run(image))
        for name in runs:
            row[f"{name}_over_ncnn"] = row[f"{name}_s"] / row["ncnn_float32_s"]
        rows.append(row)
    return rows


def guard_rows():
    from export.tflite import crops
    from keras_sr import presets
    from keras_sr.data.images import list_images

    photos = crops(list_images(str(resources.files("keras_sr.data") / "samples")))
    rows = []
    for preset in (PRESET, "realesr-animevideov3-x4"):
        model = presets.load_model(preset)
        reduced = precisions.with_precision(model, "bfloat16")
        values = [precisions.psnr_against(model(photo[None]).numpy(),
                                          reduced(photo[None]).numpy()) for photo in photos]
        rows.append({"preset": preset, "photos": len(values), "min_psnr_db": min(values),
                     "mean_psnr_db": float(np.mean(values))})
    return rows


def run_json(module, *args):
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                            text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def train_rows(steps):
    rows = []
    for precision in ("float32", "bfloat16"):
        for experiment in ("rrdb_psnr_x4", "esrgan_x4"):
            rows += run_json("benchmarks.train_step", "--one", experiment, "--batch", "4",
                             "--steps", str(steps), "--precision", precision)
    try:
        import torch  # noqa: F401
    except ImportError:
        return rows, None
    return rows, run_json("benchmarks.torch_reference", "--steps", str(steps))


def cold_start_rows(repeats=3):
    from PIL import Image

    console = os.path.join(os.path.dirname(sys.executable), "keras-sr")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "photo.png")
        Image.fromarray((photo_crop(64) * 255).round().astype(np.uint8)).save(source)
        for precision in ("float32", "bfloat16", "auto"):
            command = [console, "upscale", source, "-o", os.path.join(folder, "out"),
                       "--model", PRESET, "--precision", precision, "--engine",
                       "tensorflow", "--overwrite", "--no-progress"]
            if precision == "auto":
                subprocess.run(command, capture_output=True, check=True)  # the guard's run
            times, said = [], ""
            for _ in range(repeats):
                start = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, check=True)
                times.append(time.perf_counter() - start)
                said = next((line for line in result.stderr.splitlines() if " at " in line), "")
            rows.append({"precision": precision, "wall_s": statistics.median(times),
                         "said": said})
    return rows


ONEDNN_PROBE = """
import sys, time, numpy as np, tensorflow as tf
from keras_sr import presets
model = presets.load_model("realesrgan-x4plus")
serve = tf.function(lambda x: model(x, training=False))
for size in map(int, sys.argv[1:]):
    x = np.random.default_rng(0).random((1, size, size, 3), np.float32)
    serve(x)
    times = []
    for _ in range(5):
        start = time.perf_counter(); serve(x).numpy(); times.append(time.perf_counter() - start)
    print(size, sorted(times)[2])
"""

# What an x86 CPU without AVX512_VNNI / AVX512_BF16 / AVX_VNNI / AMX would run, emulated on one
# with them: TensorFlow leaves oneDNN off there (Eigen, whose kernels TensorFlow's wheel compiles
# for one ISA on every CPU), and turning it on would run oneDNN's AVX2 kernels, which
# ONEDNN_MAX_CPU_ISA=AVX2 selects here.
ONEDNN_SETTINGS = (
    ("TensorFlow's default", {}),
    ("oneDNN off (TF_ENABLE_ONEDNN_OPTS=0: Eigen)", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("oneDNN on (TF_ENABLE_ONEDNN_OPTS=1)", {"TF_ENABLE_ONEDNN_OPTS": "1"}),
    ("oneDNN on, capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)",
     {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}),
)


def onednn_rows(sizes):
    """Keras float32 inference of realesrgan-x4plus under each of ONEDNN_SETTINGS, each in a
    fresh process, median of 5 per LR size."""
    rows = []
    for label, setting in ONEDNN_SETTINGS:
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
        environment.update(setting)
        result = subprocess.run([sys.executable, "-c", ONEDNN_PROBE, *map(str, sizes)],
                                capture_output=True, text=True, env=environment, check=True)
        seconds = dict(line.split() for line in result.stdout.strip().splitlines()[-len(sizes):])
        rows.append({"setting": label, **{f"lr{size}_float32_s": float(seconds[str(size)])
                                          for size in sizes}})
    return rows


def serving_rows(sizes, repeats):
    import tensorflow as tf

    from export import saved_model
    from keras_sr import presets

    model = presets.load_model(PRESET)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        signatures = {precision: tf.saved_model.load(saved_model.export(
            model, os.path.join(folder, precision), precision=precision)).signatures[
                "serving_default"] for precision in ("float32", "bfloat16")}
        for size in sizes:
            image = tf.constant(photo_crop(size)[None])
            outputs, row = {}, {"lr_size": size}
            for precision, signature in signatures.items():
                def run(signature=signature):
                    return signature(lr_images=image)["sr_images"].numpy()
                outputs[precision] = run()
                row[f"{precision}_s"] = median_seconds(run, repeats)
            row["bfloat16_psnr_db"] = precisions.psnr_against(outputs["float32"],
                                                              outputs["bfloat16"])
            rows.append(row)
    return rows


SECTIONS = ("inference", "guard", "train", "cold_start", "onednn", "serving")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    import tensorflow as tf

    report = {"machine": machine(), "tensorflow": tf.__version__}
    info = report["machine"]
    print(f"{info['cpu']}, {info['cores']} cores; flags: "
          + ", ".join(f"{flag} {'yes' if present else 'no'}"
                      for flag, present in info["flags"].items())
          + f"; oneDNN {'on' if info['onednn'] else 'off'} (TF_ENABLE_ONEDNN_OPTS "
          f"{info['onednn_env']}); TensorFlow {tf.__version__}")
    print(f"auto -> {info['auto']}: {info['auto_reason']}\n")

    if "inference" in args.sections:
        report["inference"] = inference_rows(args.sizes, args.repeats, args.threads)
        print_inference(report["inference"], args)
    if "guard" in args.sections:
        report["guard"] = guard_rows()
        print("\nquality guard (bf16 against fp32, bundled photos, 64 x 64 crops):")
        for row in report["guard"]:
            print(f"  {row['preset']}: min {row['min_psnr_db']:.1f} dB, mean "
                  f"{row['mean_psnr_db']:.1f} dB over {row['photos']} photos")
    if "train" in args.sections:
        report["train"], report["train_torch"] = train_rows(args.train_steps)
        print_train(report["train"], report["train_torch"], args)
    if "cold_start" in args.sections:
        report["cold_start"] = cold_start_rows()
        print("\ncold start: keras-sr upscale, one 64 x 64 image, realesrgan-x4plus, fresh "
              "process, median of 3")
        for row in report["cold_start"]:
            print(f"  {row['precision']}: {row['wall_s']:.2f} s  ({row['said']})")
    if "onednn" in args.sections:
        sizes = [size for size in args.sizes if size <= 128]
        report["onednn"] = onednn_rows(sizes)
        print("\noneDNN: Keras float32 inference, fresh process per setting, median of 5")
        for row in report["onednn"]:
            print(f"  {row['setting']}: " + ", ".join(
                f"LR {size} {row[f'lr{size}_float32_s']:.3f} s" for size in sizes))
    if "serving" in args.sections:
        report["serving"] = serving_rows([size for size in args.sizes if size <= 128],
                                         args.repeats)
        print("\nserving_default of the exported SavedModel, median of "
              f"{args.repeats}")
        for row in report["serving"]:
            print(f"  LR {row['lr_size']}: float32 export {row['float32_s']:.3f} s, bfloat16 "
                  f"export {row['bfloat16_s']:.3f} s, {row['bfloat16_psnr_db']:.1f} dB from "
                  "the float32 one")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


def print_inference(rows, args):
    print(f"{PRESET}, batch 1, median of {args.repeats}; ncnn and TFLite with "
          f"{args.threads} threads")
    print("| LR size | Keras fp32 s | Keras bf16 s | TFLite fp32 s | ncnn fp32 s "
          "| Keras bf16 / ncnn | Keras fp32 / ncnn | bf16 vs fp32 | TFLite vs fp32 "
          "| ncnn vs fp32 |")
    print("|---" * 10 + "|")
    for row in rows:
        tflite = ((f"{row['tflite_float32_s']:.3f}", f"{row['tflite_float32_psnr_db']:.1f} dB")
                  if "tflite_float32_s" in row else ("n/a", "n/a"))
        print(f"| {row['lr_size']} | {row['keras_float32_s']:.3f} | {row['keras_bfloat16_s']:.3f}"
              f" | {tflite[0]} | {row['ncnn_float32_s']:.3f}"
              f" | {row['keras_bfloat16_over_ncnn']:.2f} | {row['keras_float32_over_ncnn']:.2f}"
              f" | {row['keras_bfloat16_psnr_db']:.1f} dB | {tflite[1]}"
              f" | {row['ncnn_float32_psnr_db']:.1f} dB |")


def print_train(keras_rows, torch_rows, args):
    torch_by_name = {row["experiment"]: row["step_s"] for row in torch_rows or []}
    print(f"\ntraining step, batch 4, HR 128, median of {args.train_steps} after the first")
    print("| experiment | Keras fp32 s | Keras bf16 s | PyTorch fp32 s | bf16 / PyTorch "
          "| bf16 / fp32 |")
    print("|---|---|---|---|---|---|")
    for experiment in ("rrdb_psnr_x4", "esrgan_x4"):
        step = {row["precision"]: row["step_s"] for row in keras_rows
                if row["experiment"] == experiment}
        reference = torch_by_name.get(experiment)
        print(f"| {experiment} | {step['float32']:.2f} | {step['bfloat16']:.2f} | "
              + (f"{reference:.2f} | {step['bfloat16'] / reference:.2f}" if reference
                 else "n/a (no PyTorch) | n/a")
              + f" | {step['bfloat16'] / step['float32']:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
