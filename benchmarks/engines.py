"""The whole `keras-sr upscale` command on each engine (TensorFlow, LiteRT/XNNPACK, auto) against
ncnn doing the same job, each in a fresh process.

    python -m benchmarks.engines [--preset realesrgan-x4plus] [--model-file PATH] [--photos 6]
        [--size 128] [--repeats 3] [--threads N] [--json OUT]

The job: `--photos` PNG crops of `--size` x `--size` from the bundled photos, upscaled into a
folder by `keras-sr upscale FOLDER -o OUT --model PRESET --engine E` (import, model load,
trace or interpreter set-up, every photo, PNG writing): the median wall time of `--repeats`
runs, after a first run that fills the caches (the LiteRT conversion, auto's timing, the
precision guard), whose time is reported too. ncnn's row runs the same photos through the
preset's ncnn files in a fresh Python process (import, load, run, PNG writing), fp32, with
the same thread count. Run it with `TF_ENABLE_ONEDNN_OPTS=0` to see what an AVX2-only CPU's
TensorFlow does (Eigen); LiteRT and ncnn pick their kernels for the CPU they run on, so only a
real AVX2 CPU gives their AVX2 figures.

`--model-file` runs keras-sr on that `.keras` file (the preset's weights) instead of the preset
name, which tries to fetch the official weights on every run until it has them (then falls
back to the ncnn package's copy).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_sr import precision as precisions  # noqa: E402

NCNN_JOB = """
import os, sys
import numpy as np
from PIL import Image
from keras_sr import presets
from keras_sr.convert import ncnn
preset, folder, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
run = ncnn.reference_runner(*presets.source_files(preset), num_threads=threads)
os.makedirs(out, exist_ok=True)
for name in sorted(os.listdir(folder)):
    image = np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"), np.float32) / 255
    sr = np.clip(run(image), 0, 1)
    Image.fromarray((sr * 255).round().astype(np.uint8)).save(os.path.join(out, name))
"""


def photos(count, size):
    """`count` size x size crops of the bundled photos, cycling through them and their
    corners."""
    from importlib import resources

    from keras_sr.data.images import read_image

    folder = resources.files("keras_sr.data") / "samples"
    images = [read_image(str(folder / name)) for name in
              ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")]
    crops = []
    for index in range(count):
        image = images[index % len(images)]
        corner = index // len(images)
        top = 0 if corner % 2 == 0 else image.shape[0] - size
        left = 0 if corner < 2 else image.shape[1] - size
        crops.append(image[top:top + size, left:left + size, :3])
    return crops


def timed(command, repeats):
    """(first run s, median of `repeats` later runs s, the command's status line)."""
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    first = time.perf_counter() - start
    times, said = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        said = next((line for line in result.stderr.splitlines()
                     if line.startswith("keras-sr upscale:")), "")
    return first, statistics.median(times), said


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realesrgan-x4plus")
    parser.add_argument("--model-file", help="a .keras file of the preset's weights, run "
                        "instead of the preset name (see above)")
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engines", nargs="+", default=["tensorflow", "litert", "auto", "ncnn"],
                        choices=["tensorflow", "litert", "auto", "ncnn"])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    from PIL import Image

    from keras_sr.engines import default_threads

    threads = args.threads or default_threads()
    console = os.path.join(os.path.dirname(sys.executable), "keras-sr")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        folder = os.path.join(work, "photos")
        os.makedirs(folder)
        for index, crop in enumerate(photos(args.photos, args.size)):
            Image.fromarray(crop).save(os.path.join(folder, f"photo{index}.png"))
        for engine in args.engines:
            out = os.path.join(work, f"out_{engine}")
            if engine == "ncnn":
                command = [sys.executable, "-c", NCNN_JOB, args.preset, folder, out,
                           str(threads)]
            else:
                command = [console, "upscale", folder, "-o", out, "--model",
                           args.model_file or args.preset,
                           "--engine", engine, "--threads", str(threads), "--overwrite",
                           "--no-progress"]
            first, median, said = timed(command, args.repeats)
            rows.append({"engine": engine, "first_s": first, "median_s": median, "said": said})
            print(f"{engine}: first {first:.1f} s, median {median:.1f} s  {said}", flush=True)
        outputs = {row["engine"]: sorted(os.listdir(os.path.join(work, f"out_{row['engine']}")))
                   for row in rows}
        if "ncnn" in outputs and "litert" in outputs:
            worst = min(
                precisions.psnr_against(
                    np.asarray(Image.open(os.path.join(work, "out_ncnn", name)), np.float32)
                    / 255,
                    np.asarray(Image.open(os.path.join(work, "out_litert", name)), np.float32)
                    / 255)
                for name in outputs["ncnn"])
            print(f"LiteRT against ncnn, 8-bit outputs: worst photo {float(worst):.1f} dB")
    flags = precisions.cpu_flags()
    print(f"\n{args.preset}{f' ({args.model_file})' if args.model_file else ''}, "
          f"{args.photos} photos of {args.size} x {args.size}, whole command in a "
          f"fresh process, median of {args.repeats} after a first run; {precisions.cpu_name()}, "
          f"{threads} threads; flags: "
          + ", ".join(f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags)
          + f"; TensorFlow oneDNN {'on' if precisions.onednn_enabled(flags) else 'off'}")
    ncnn = next((row["median_s"] for row in rows if row["engine"] == "ncnn"), None)
    print("| engine | first run s | median s | / ncnn |")
    print("|---|---|---|---|")
    for row in rows:
        ratio = f"{row['median_s'] / ncnn:.2f}" if ncnn else "-"
        print(f"| {row['engine']} | {row['first_s']:.1f} | {row['median_s']:.1f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"threads": threads, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
