"""TFLite / LiteRT conversion of keras-sr generators.

Models convert with TFLite builtin ops only (no Flex ops: the LiteRT interpreter on phones does not
carry them) and keep a dynamic H x W unless a fixed input size is asked for, which is what mobile
GPU delegates want.
"""

import argparse
import json
import os
import re
import sys
import warnings

if __name__ == "__main__":
    os.environ["KERAS_SR_PARSING"] = "1"  # answer --help before TensorFlow: keras_sr.startup

# isort: split
import numpy as np

from keras_sr import litert

# The runtime lives in the library; these names stay importable from here.
from keras_sr.litert import (  # noqa: F401
    LITERT_MISSING,
    conversion_failure,
    interpreter,
    operator_names,
    run,
)
from keras_sr.precision import psnr_against

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# PSNR of each mode against the Keras model that the parity report is held to (float32 is held
# to a max abs error of 1e-5 instead).
PSNR_TARGETS = {"float16": 50.0, "dynamic": 40.0, "int8": 35.0}
FLOAT32_MAX_ERROR = 1e-5


def convert(model, input_size=None, quantize="none", representative_images=None,
            float_layers=()):
    """Converts a Keras generator to a TFLite flatbuffer with builtin ops only.

    Args:
        model: a Keras model mapping `[batch, H, W, 3]` images in [0, 1] to SR images.
        input_size: `(height, width)` for a fixed-shape model, or None (the default) for a model
            whose batch, height and width are resized at run time with `resize_tensor_input`.
        quantize: "none" (float32), "float16" (weights stored in half precision), "dynamic"
            (int8 weights, float activations) or "int8" (int8 weights and activations,
            calibrated on `representative_images`; input and output stay float32).
        representative_images: for int8, a list of `(H, W, 3)` float32 images in [0, 1].
        float_layers: for int8, names of Keras layers whose TFLite ops stay float32 (e.g.
            `("conv_first", "conv_last")` of an RRDBNet); calibrated once, then quantized
            without them.

    Returns:
        The `.tflite` model as bytes.

    Raises:
        ValueError: if an argument is invalid, or the model needs an op outside the TFLite
            builtin set.
    """
    if input_size is not None:
        if len(input_size) != 2 or any(int(side) != side or side < 1 for side in input_size):
            raise ValueError(
                f"input_size must be (height, width) as two positive integers, got {input_size!r}"
            )
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if quantize == "int8" and not representative_images:
        raise ValueError("int8 quantization calibrates on representative images; give some")
    if float_layers and quantize != "int8":
        raise ValueError(f"float_layers applies to int8 quantization, not {quantize!r}")
    missing = sorted(set(float_layers) - {layer.name for layer in model.layers})
    if missing:
        raise ValueError(f"float_layers names layers that {model.name} does not have: "
                         f"{', '.join(missing)}")
    import tensorflow as tf

    with litert.converter(model, input_size) as converter:
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            # int8 kernels where they exist, float builtins for the rest (still no Flex).
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                   tf.lite.OpsSet.TFLITE_BUILTINS]

            def calibration():
                for image in representative_images:
                    if input_size is not None:
                        image = _fit(image, input_size)
                    yield [np.asarray(image, np.float32)[None]]
            converter.representative_dataset = calibration
        try:
            if float_layers:
                return _quantized_without(converter, calibration, float_layers)
            return converter.convert()
        except Exception as error:  # the converter raises its own ConverterError type
            raise ValueError(conversion_failure(model.name, str(error))) from error


def _quantized_without(converter, calibration, float_layers):
    """int8 with the ops of `float_layers` left float: TFLite's QuantizationDebugger calibrates
    once and quantizes again with those ops' output tensors denylisted (its selective
    quantization). A layer's ops are the tensors under `<model>/<layer>_<n>/`."""
    import tensorflow as tf

    pattern = re.compile(r"/(%s)(_\d+)?/" % "|".join(map(re.escape, float_layers)))
    with warnings.catch_warnings():  # the debugger's own use of the deprecated tf.lite one
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                             debug_dataset=calibration)
        names = sorted({detail["name"] for detail in
                        interpreter(debugger.calibrated_model).get_tensor_details()
                        if pattern.search(detail["name"])})
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=names)
        return debugger.get_nondebug_quantized_model()


def _fit(image, size):
    """Crops or edge-pads an image to `size` (for calibrating a fixed-shape model)."""
    image = image[:size[0], :size[1]]
    return np.pad(image, ((0, size[0] - image.shape[0]), (0, size[1] - image.shape[1]),
                          (0, 0)), mode="edge")


def crops(paths, size=64, limit=16):
    """Centre crops (`size` x `size`, float32 [0, 1]) of up to `limit` real photos."""
    from keras_sr.data.images import UnreadableImageError, read_image

    images = []
    for path in paths:
        try:
            image = read_image(path)
        except UnreadableImageError:
            continue
        height, width = image.shape[:2]
        top, left = max((height - size) // 2, 0), max((width - size) // 2, 0)
        images.append(image[top:top + size, left:left + size].astype(np.float32) / 255.0)
        if len(images) == limit:
            break
    if not images:
        raise ValueError(f"no readable images among {len(paths)} files")
    return images


def parity_report(model, tflite_model, images, quantize, num_threads=None):
    """TFLite against Keras on `images`: max abs error and PSNR (dB, [0, 1] range) per image
    and overall, with the mode's target and whether it is met."""
    tflite_interpreter = interpreter(tflite_model, num_threads=num_threads)
    fixed = tflite_interpreter.get_input_details()[0]["shape_signature"]
    rows = []
    for image in images:
        if all(side > 0 for side in fixed):
            image = _fit(image, (int(fixed[1]), int(fixed[2])))
        expected = np.clip(np.asarray(model(image[None], training=False)), 0, 1)
        actual = np.clip(run(tflite_interpreter, image[None].astype(np.float32)), 0, 1)
        rows.append({"max_abs_error": float(np.abs(actual - expected).max()),
                     "psnr_db": psnr_against(expected, actual)})
    report = {"quantize": quantize, "images": len(rows),
              "max_abs_error": max(r["max_abs_error"] for r in rows),
              "min_psnr_db": min(r["psnr_db"] for r in rows), "per_image": rows}
    if quantize == "none":
        report["target"] = f"max abs error <= {FLOAT32_MAX_ERROR}"
        report["meets_target"] = bool(report["max_abs_error"] <= FLOAT32_MAX_ERROR)
    else:
        report["target"] = f"PSNR >= {PSNR_TARGETS[quantize]} dB"
        report["meets_target"] = bool(report["min_psnr_db"] >= PSNR_TARGETS[quantize])
    return report


def main(argv=None, prog="python -m export.tflite"):
    from keras_sr import outputs

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert a generator to TFLite (builtin ops only) and report its parity "
        "with the Keras model on real photos.")
    parser.add_argument("--model", required=True, help=".keras file or preset name")
    parser.add_argument("-o", "--out", required=True, help="output .tflite file")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none")
    parser.add_argument("--input-size", type=outputs.int_at_least(1), nargs=2,
                        metavar=("H", "W"),
                        help="fixed LR input size (default: dynamic H x W)")
    parser.add_argument("--representative", metavar="DIR",
                        help="photos to calibrate int8 and to measure parity on (default: the "
                        "photos bundled with keras-sr)")
    parser.add_argument("--threads", type=outputs.int_at_least(1), default=2,
                        help="LiteRT threads for the report")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)

    from importlib import resources

    from keras_sr import startup

    startup.load()
    from keras_sr import atomic, presets
    from keras_sr.data.images import list_images
    from keras_sr.precision import with_precision

    report_path = f"{args.out}.parity.json"
    try:
        outputs.writable_file(args.out, args.overwrite, what="--out")
        outputs.writable_file(report_path, args.overwrite, what="the parity report")
        folder = args.representative or str(resources.files("keras_sr.data") / "samples")
        images = crops(list_images(folder))
        # TFLite quantizes on its own terms (--quantize); the conversion starts from float32.
        model = with_precision(presets.load_model(args.model), "float32")
        flatbuffer = convert(model, args.input_size, args.quantize,
                             images if args.quantize == "int8" else None)
        flex = [op for op in operator_names(flatbuffer) if op == "CUSTOM" or op.startswith("Flex")]
        if flex:
            raise ValueError(f"the converted model uses non-builtin ops {flex}")
        report = parity_report(model, flatbuffer, images, args.quantize, args.threads)
    except (ValueError, OSError, RuntimeError, ImportError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    atomic.write_bytes(args.out, flatbuffer)
    report.update({"model": args.model, "tflite": args.out, "bytes": len(flatbuffer),
                   "input_size": args.input_size or "dynamic", "images_from": folder})
    atomic.write_bytes(report_path, json.dumps(report, indent=2).encode())
    verdict = "meets" if report["meets_target"] else "MISSES"
    kind = "float32, not quantized" if args.quantize == "none" else f"{args.quantize} quantized"
    print(f"wrote {args.out} ({len(flatbuffer) / 2**20:.1f} MiB, {kind}); parity on "
          f"{report['images']} photos: max abs error {report['max_abs_error']:.2e}, min PSNR "
          f"{report['min_psnr_db']:.1f} dB ({verdict} {report['target']}); "
          f"report in {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
