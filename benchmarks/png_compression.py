"""PNG output: encoding time and file size per zlib level (`keras-sr upscale --png-compression`).

    python -m benchmarks.png_compression [--size 1704x960] [--levels 0 1 3 6 9] [--repeats 7]

Each bundled photo, resized bicubic to `--size` (a 240p frame or a 426 x 240 photo at x4 is
1704 x 960), is encoded with `keras_sr.data.images.encode_image` at every level, the levels in
turn `--repeats` times so that the host's drift falls on all; the median time and the size of
each, and both relative to the default level. Pure Python and zlib: one core.
"""

import argparse
import os
import platform
import statistics
import time
from importlib import resources


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1704x960")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 3, 6, 9])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import numpy as np
    from PIL import Image

    from keras_sr.data.images import encode_image
    from keras_sr.outputs import DEFAULT_PNG_COMPRESSION
    from keras_sr.precision import cpu_name

    width, height = map(int, args.size.split("x"))
    levels = sorted(set(args.levels) | {DEFAULT_PNG_COMPRESSION})
    print(f"{cpu_name() or platform.processor()} ({os.cpu_count()} CPUs), Pillow "
          f"{Image.__version__}, {width} x {height}, median of {args.repeats}; the default "
          f"is level {DEFAULT_PNG_COMPRESSION}\n")
    print("| photo | level | ms | KiB | time / default | size / default |")
    print("|---|---|---|---|---|---|")
    samples = resources.files("keras_sr.data") / "samples"
    for sample in sorted(entry.name for entry in samples.iterdir()
                         if entry.name.endswith((".png", ".jpg"))):
        with Image.open(samples / sample) as photo:
            pixels = np.asarray(photo.convert("RGB").resize((width, height), Image.BICUBIC))
        times = {level: [] for level in levels}
        sizes = {}
        for _ in range(args.repeats):
            for level in levels:
                start = time.perf_counter()
                sizes[level] = len(encode_image(pixels, "png", png_compression=level))
                times[level].append(time.perf_counter() - start)
        default = statistics.median(times[DEFAULT_PNG_COMPRESSION])
        for level in levels:
            median = statistics.median(times[level])
            print(f"| {sample} | {level} | {median * 1e3:.1f} | {sizes[level] / 1024:.0f} | "
                  f"{median / default:.2f} | "
                  f"{sizes[level] / sizes[DEFAULT_PNG_COMPRESSION]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
