"""Training-pipeline throughput: (LR, HR) patches per second from a folder of HR images.

    python -m benchmarks.data_pipeline [--data ../shared/data/BSD200] [--scale 4]
        [--patch 128] [--batch 16] [--repeats 3] [--shuffle-buffer 64]

Measures, as medians over `--repeats` fresh pipelines:
- time to the first batch (listing, header scan, graph building, the first decodes);
- cold throughput: the first epoch, where every image pays decode + MATLAB bicubic + crop and
  augmentation (one patch per image per epoch), from the pipeline's start;
- cached throughput: after that epoch has filled the in-memory cache of decoded pairs.
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from keras_sr.data.pipeline import training_dataset  # noqa: E402
from keras_sr.data.sources import folder_source  # noqa: E402


def patches_per_second(iterator, batches, batch_size):
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def one_run(args):
    """(time to first batch, cold rate over the first epoch, cached rate afterwards, source)."""
    start = time.perf_counter()
    source = folder_source(args.data, args.scale, min_hr_size=args.patch, shuffle_seed=0)
    dataset = training_dataset(source, args.patch, args.scale, args.batch, seed=0, cache=True,
                               shuffle_buffer=args.shuffle_buffer)
    iterator = iter(dataset)
    next(iterator)
    first_batch = time.perf_counter() - start
    # The first epoch: every image decoded, degraded and cached once.
    epoch_batches = -(-source.num_images // args.batch)
    for _ in range(epoch_batches - 1):
        next(iterator)
    cold = epoch_batches * args.batch / (time.perf_counter() - start)
    cached = patches_per_second(iterator, args.batches, args.batch)
    return first_batch, cold, cached, source


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "BSD200"))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=60, help="batches timed per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shuffle-buffer", type=int, default=64,
                        help="decoded images shuffled together (the pipeline's default: 64)")
    args = parser.parse_args(argv)

    runs = [one_run(args) for _ in range(args.repeats)]
    first_batch, cold, cached = (statistics.median(run[i] for run in runs) for i in range(3))
    source = runs[0][3]
    print(f"{args.data}: {source.num_images} images ({source.skip_log.summary()}), "
          f"x{args.scale}, HR patch {args.patch}, batch {args.batch}, shuffle buffer "
          f"{args.shuffle_buffer}; median of {args.repeats}; "
          f"TensorFlow {tf.__version__}, {platform.machine()}, {os.cpu_count()} cores")
    print("| time to first batch | cold: first epoch, patches/s | cached, patches/s |")
    print("|---|---|---|")
    print(f"| {first_batch:.2f} s | {cold:.0f} | {cached:.0f} |")


if __name__ == "__main__":
    main()
