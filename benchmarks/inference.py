"""Generator inference latency: Keras graph mode, the TF-Serving SavedModel, and TFLite fp32 /
fp16 / dynamic-range (LiteRT, XNNPACK).

    python -m benchmarks.inference [--sizes 64 128 256] [--repeats 3] [--threads 2]
        [--modes keras saved_model tflite_fp32 tflite_fp16 tflite_dynamic] [--json OUT]
        [--presets realesrgan-x4plus realesr-animevideov3 ...]

The network is RRDBNet x4 (23 blocks), or each `--presets` model's architecture
(`keras_sr.zoo`), randomly initialised: latency does not depend on the weights' values.

Reports the median latency of one LR image per input size, and the effective GFLOP/s: the FLOPs
of direct convolution (2 x output pixels x kernel area x in x out channels, summed over every
Conv2D in the traced graph) divided by the median time.
"""

import argparse
import json
import os
import platform
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from export import saved_model, tflite  # noqa: E402
from keras_sr import zoo  # noqa: E402
from keras_sr.engines import median_seconds  # noqa: E402
from keras_sr.layers.residual_dense_block import per_layer_ops  # noqa: E402
from keras_sr.models import RRDBNet  # noqa: E402
from keras_sr.precision import describe_device  # noqa: E402


def conv_flops(model, height, width):
    """Direct-convolution FLOPs of one `[1, height, width, 3]` call of `model`."""
    # Traced layer by layer, apart from the timed function: RRDB blocks otherwise run as one
    # shared nested graph whose convolutions the outer graph does not list.
    with per_layer_ops():
        serve = tf.function(lambda lr_images: model(lr_images, training=False))
        graph = serve.get_concrete_function(
            tf.TensorSpec([1, height, width, 3], tf.float32)).graph
    total = 0
    for operation in graph.get_operations():
        if operation.type == "Conv2D":
            output_shape = operation.outputs[0].shape
            kernel_height, kernel_width, in_channels, out_channels = operation.inputs[1].shape
            total += (2 * output_shape[1] * output_shape[2]
                      * kernel_height * kernel_width * in_channels * out_channels)
    return total


MODES = ("keras", "saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic")


def runners(model, modes, threads, workdir):
    """{mode: function [1, H, W, 3] -> SR} for each requested way of running `model`."""
    result = {}
    if "keras" in modes:
        serve = tf.function(lambda lr_images: model(lr_images, training=False))
        result["keras"] = lambda x: serve(x).numpy()
    if "saved_model" in modes:
        path = saved_model.export(model, os.path.join(workdir, "served"))
        signature = tf.saved_model.load(path).signatures["serving_default"]
        result["saved_model"] = lambda x: signature(lr_images=tf.constant(x))["sr_images"].numpy()
    quantize = {"tflite_fp32": "none", "tflite_fp16": "float16", "tflite_dynamic": "dynamic"}
    for mode, option in quantize.items():
        if mode in modes:
            interpreter = tflite.interpreter(tflite.convert(model, quantize=option),
                                             num_threads=threads)
            result[mode] = lambda x, interpreter=interpreter: tflite.run(interpreter, x)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--presets", nargs="+", choices=sorted(zoo.RELEASES), default=[],
                        help="time these presets' networks instead of RRDBNet x4")
    args = parser.parse_args(argv)

    networks = [(name, zoo.build(zoo.RELEASES[name])) for name in args.presets] or \
        [("RRDBNet x4 (23 blocks, 64 features)", RRDBNet(scale=4))]
    rows = []
    for label, model in networks:
        with tempfile.TemporaryDirectory() as workdir:
            runs = runners(model, args.modes, args.threads, workdir)
            for size in args.sizes:
                lr_images = np.random.default_rng(0).random((1, size, size, 3),
                                                            dtype=np.float32)
                flops = conv_flops(model, size, size)
                row = {"network": label, "lr_size": size, "gflop": flops / 1e9}
                for mode in args.modes:
                    seconds = median_seconds(lambda: runs[mode](lr_images), args.repeats)
                    row[f"{mode}_s"] = seconds
                    row[f"{mode}_gflops"] = flops / seconds / 1e9
                rows.append(row)

    print(f"batch 1, median of {args.repeats}; TensorFlow {tf.__version__}; "
          f"{describe_device()}, {platform.machine()}, {os.cpu_count()} cores; TFLite with "
          f"{args.threads} threads (XNNPACK); float32")
    print("| network | LR size | GFLOP | "
          + " | ".join(f"{m} s (GFLOP/s)" for m in args.modes) + " |")
    print("|---" * (3 + len(args.modes)) + "|")
    for row in rows:
        cells = " | ".join(f"{row[f'{m}_s']:.2f} ({row[f'{m}_gflops']:.0f})" for m in args.modes)
        print(f"| {row['network']} | {row['lr_size']}x{row['lr_size']} | {row['gflop']:.1f} | "
              f"{cells} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
