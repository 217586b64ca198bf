"""Real-ESRGAN degradations: how many (LR, HR) pairs per second the host makes, and a sheet of
what they look like.

    python -m benchmarks.real_degradations [--hr-patch 256] [--batch 12] [--batches 20]
        [--sheet degradations.png]

Throughput: `keras_sr.data.pipeline.training_dataset` with `degradation=DegradationOptions()`
(x4plus values) on the bundled sample photos, cached decoded images, `--batch` pairs of
`--hr-patch` HR each, parallel map with AUTOTUNE; the median over `--batches` batches after a
warm-up of 3, next to the same pipeline with bicubic LR. The sheet: one HR patch and eleven LR
images degraded from it with different seeds (each enlarged x4, nearest), titled with the seed.
"""

import argparse
import os
import platform
import statistics
import time
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_sr.data.pipeline import training_dataset  # noqa: E402
from keras_sr.data.real_degradations import DegradationOptions, degrade  # noqa: E402
from keras_sr.data.sources import folder_source  # noqa: E402
from keras_sr.precision import describe_device  # noqa: E402

SAMPLES = str(resources.files("keras_sr.data") / "samples")


def pairs_per_second(degradation, hr_patch, batch, batches):
    source = folder_source(SAMPLES, scale=4, min_hr_size=hr_patch)
    iterator = iter(training_dataset(source, hr_patch, 4, batch, seed=0, cache=True,
                                     degradation=degradation))
    for _ in range(3):
        next(iterator)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def write_sheet(path, hr_patch):
    from keras_sr.comparison import comparison_sheet
    from keras_sr.data.images import read_image, write_image

    hr = read_image(os.path.join(SAMPLES, "astronaut.png"))[100:100 + hr_patch,
                                                            150:150 + hr_patch]
    hr_float = tf.constant(hr, tf.float32) / 255.0
    panels = [("HR", hr)]
    run = tf.function(lambda image, seed: degrade(image, 4, seed))
    for seed in range(11):
        lr = (run(hr_float, tf.constant([0, seed])).numpy() * 255).round().astype(np.uint8)
        panels.append((f"seed {seed}", lr.repeat(4, 0).repeat(4, 1)))
    rows = [comparison_sheet(panels[start:start + 4]) for start in (0, 4, 8)]
    write_image(path, np.concatenate(rows, axis=0))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hr-patch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--sheet", help="also write the sheet of degraded examples here")
    args = parser.parse_args(argv)
    real = pairs_per_second(DegradationOptions(), args.hr_patch, args.batch, args.batches)
    bicubic = pairs_per_second(None, args.hr_patch, args.batch, args.batches)
    print(f"HR {args.hr_patch}, batch {args.batch}, {describe_device()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"real degradations: {real:.1f} pairs/s; bicubic LR: {bicubic:.1f} pairs/s "
          f"(medians of {args.batches} batches)")
    if args.sheet:
        write_sheet(args.sheet, args.hr_patch)
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    main()
