"""Image output encoding: time and file size per PNG zlib level (`keras-sr upscale
--png-compression`), or per lossless WebP setting (the default WebP output).

    python -m benchmarks.png_compression [--size 1704x960] [--levels 0 1 3 6 9] [--repeats 7]
    python -m benchmarks.png_compression --webp 0:30 1:10 1:30 4:70 [--size ...] [--repeats ...]

Each bundled photo, resized bicubic to `--size` (a 240p frame or a 426 x 240 photo at x4 is
1704 x 960), is encoded with `keras_sr.data.images.encode_image` in every way asked, the ways
in turn `--repeats` times so that the host's drift falls on all; the median time and the size
of each, and both relative to the default. `--webp METHOD:EFFORT ...` compares lossless WebP
settings (libwebp's method 0-6 and effort 0-100; 4:70 is what OpenCV's `imwrite`, and so
Real-ESRGAN's scripts, write), beside keras-sr's default and lossy quality 95 (keras-sr's
default before). Pure Python, zlib and libwebp: one core.
"""

import argparse
import os
import platform
import statistics
import time
from importlib import resources


def _encoders(args):
    """{name: encode(pixels) -> bytes} of the ways asked, and the default's name."""
    from keras_sr.data import images
    from keras_sr.outputs import DEFAULT_PNG_COMPRESSION, WEBP_LOSSLESS

    if not args.webp:
        levels = sorted(set(args.levels) | {DEFAULT_PNG_COMPRESSION})
        return ({f"level {level}": (lambda pixels, level=level: images.encode_image(
                    pixels, "png", png_compression=level)) for level in levels},
                f"level {DEFAULT_PNG_COMPRESSION}")
    default = f"lossless {WEBP_LOSSLESS['method']}:{WEBP_LOSSLESS['quality']}"
    encoders = {default: lambda pixels: images.encode_image(pixels, "webp"),
                "lossy q95": lambda pixels: images.encode_image(pixels, "webp", quality=95)}
    for setting in args.webp:
        method, effort = map(int, setting.split(":"))
        encoders.setdefault(f"lossless {method}:{effort}", lambda pixels, method=method,
                            effort=effort: _lossless_webp(pixels, method, effort))
    return encoders, default


def _lossless_webp(pixels, method, effort):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="WEBP", lossless=True, method=method,
                                 quality=effort)
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1704x960")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 3, 6, 9])
    parser.add_argument("--webp", nargs="+", metavar="METHOD:EFFORT",
                        help="compare lossless WebP settings instead of PNG levels")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import numpy as np
    from PIL import Image

    from keras_sr.precision import cpu_name

    width, height = map(int, args.size.split("x"))
    encoders, default = _encoders(args)
    print(f"{cpu_name() or platform.processor()} ({os.cpu_count()} CPUs), Pillow "
          f"{Image.__version__}, {width} x {height}, median of {args.repeats}; the default "
          f"is {default}\n")
    print("| photo | encoding | ms | KiB | time / default | size / default |")
    print("|---|---|---|---|---|---|")
    samples = resources.files("keras_sr.data") / "samples"
    for sample in sorted(entry.name for entry in samples.iterdir()
                         if entry.name.endswith((".png", ".jpg"))):
        with Image.open(samples / sample) as photo:
            pixels = np.asarray(photo.convert("RGB").resize((width, height), Image.BICUBIC))
        times = {name: [] for name in encoders}
        sizes = {}
        for _ in range(args.repeats):
            for name, encode in encoders.items():
                start = time.perf_counter()
                sizes[name] = len(encode(pixels))
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times[default])
        for name in encoders:
            median = statistics.median(times[name])
            print(f"| {sample} | {name} | {median * 1e3:.1f} | {sizes[name] / 1024:.0f} | "
                  f"{median / base:.2f} | {sizes[name] / sizes[default]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
