"""Seams of tiled upscaling: PSNR of tiled against untiled output for several tile pads.

    python -m benchmarks.tiling [--model realesrgan-x4plus] [--size 128] [--tile 48]
        [--pads 0 4 8 16 24 32] [--json OUT]

Upscales one LR crop of a bundled photo whole, then in `--tile` tiles with each pad, and reports
the PSNR (dB, [0, 1] range, RGB) and max abs difference of the tiled result against the whole
one. The model is a preset when its package is installed, else a random-weight RRDBNet x4.
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.pretrained import photo_crop  # noqa: E402
from keras_sr import inference, presets  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--tile", type=int, default=48)
    parser.add_argument("--pads", type=int, nargs="+", default=[0, 4, 8, 16, 24, 32])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    try:
        upscaler = inference.load_upscaler(args.model)
        name = args.model
    except presets.PresetUnavailable:
        from keras_sr.models import RRDBNet
        upscaler = inference.keras_upscaler(RRDBNet(scale=4))
        name = "RRDBNet x4 (random weights; preset package not installed)"
    image = photo_crop(args.size)
    inference.upscale_image(upscaler, image[:32, :32])  # warm-up: tracing, kernel set-up
    start = time.perf_counter()
    whole = inference.upscale_image(upscaler, image)
    whole_s = time.perf_counter() - start
    rows = []
    for pad in args.pads:
        start = time.perf_counter()
        tiled = inference.upscale_image(upscaler, image, tile=args.tile, tile_pad=pad)
        seconds = time.perf_counter() - start
        mse = float(np.mean((tiled.astype(np.float64) - whole) ** 2))
        rows.append({"tile_pad": pad, "psnr_db": float("inf") if mse == 0 else
                     10 * np.log10(1.0 / mse), "max_abs_diff": float(np.abs(tiled - whole).max()),
                     "seconds": seconds})
    print(f"{name}: LR {args.size}x{args.size} crop of astronaut.png, tiles of {args.tile}, "
          f"untiled {whole_s:.1f} s; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print("| tile pad | PSNR tiled vs untiled (dB) | max abs diff | seconds |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['tile_pad']} | {row['psnr_db']:.1f} | {row['max_abs_diff']:.1e} "
              f"| {row['seconds']:.1f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": name, "untiled_s": whole_s, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
