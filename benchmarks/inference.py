"""Generator inference latency: Keras graph mode and TFLite fp32 (LiteRT, XNNPACK).

    python -m benchmarks.inference [--sizes 64 128] [--repeats 5] [--threads 2] [--json OUT]

Reports the median latency of one LR image per input size, and the effective GFLOP/s: the FLOPs
of direct convolution (2 x output pixels x kernel area x in x out channels, summed over every
Conv2D in the traced graph) divided by the median time.
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from export import tflite  # noqa: E402
from keras_sr.models import RRDBNet  # noqa: E402


def conv_flops(serve, height, width):
    """Direct-convolution FLOPs of one `[1, height, width, 3]` call of a traced model."""
    graph = serve.get_concrete_function(tf.TensorSpec([1, height, width, 3], tf.float32)).graph
    total = 0
    for operation in graph.get_operations():
        if operation.type == "Conv2D":
            output_shape = operation.outputs[0].shape
            kernel_height, kernel_width, in_channels, out_channels = operation.inputs[1].shape
            total += (2 * output_shape[1] * output_shape[2]
                      * kernel_height * kernel_width * in_channels * out_channels)
    return total


def median_seconds(run_once, repeats):
    run_once()  # warm-up: tracing, allocation, XNNPACK packing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    model = RRDBNet(scale=4)  # random weights: latency does not depend on their values
    serve = tf.function(lambda lr_images: model(lr_images, training=False))
    interpreter = tflite.interpreter(tflite.convert(model), num_threads=args.threads)

    rows = []
    for size in args.sizes:
        lr_images = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
        flops = conv_flops(serve, size, size)
        keras_s = median_seconds(lambda: serve(lr_images).numpy(), args.repeats)
        tflite_s = median_seconds(lambda: tflite.run(interpreter, lr_images), args.repeats)
        rows.append({"lr_size": size, "gflop": flops / 1e9,
                     "keras_graph_s": keras_s, "keras_graph_gflops": flops / keras_s / 1e9,
                     "tflite_fp32_s": tflite_s, "tflite_fp32_gflops": flops / tflite_s / 1e9})

    print(f"RRDBNet x4 (23 blocks, 64 features), batch 1, median of {args.repeats}; "
          f"TensorFlow {tf.__version__}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; TFLite with {args.threads} threads")
    print("| LR size | GFLOP | Keras graph s | GFLOP/s | TFLite fp32 s | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['lr_size']}x{row['lr_size']} | {row['gflop']:.1f} "
              f"| {row['keras_graph_s']:.2f} | {row['keras_graph_gflops']:.1f} "
              f"| {row['tflite_fp32_s']:.2f} | {row['tflite_fp32_gflops']:.1f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
