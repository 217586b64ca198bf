"""TFLite int8 for RRDBNet on x86: which layers to keep in float and what to calibrate on, by
PSNR against Keras float32 and by latency against TFLite float32 (XNNPACK), in one run.

    python -m benchmarks.tflite_int8 [--calibration ../shared/data/BSD200] [--crops 32]
        [--threads 2] [--repeats 3] [--json OUT]

The published realesrgan-x4plus (RRDBNet x4, 23 blocks). Quality: PSNR of each `.tflite` model
against the Keras float32 model on 64 x 64 centre crops of the four bundled photos, outputs
clipped to [0, 1] (the parity report of `export.tflite`; min and mean). Speed: one LR 64 x 64
crop, median of `--repeats` after a warm-up, `--threads` threads. Weights are per-channel int8
in every int8 model (the converter's default).

Variants: float32; int8 calibrated on the bundled photos (what `export.tflite --quantize int8`
does by default; they are also the photos it is measured on); int8 calibrated on `--crops`
random 64 x 64 crops of other photos (`--calibration`, a folder: BSD200 when the shared data is
there); and, with that calibration, int8 with the first and last convolutions in float, then
with the upsampling convolutions and the HR convolution too.
"""

import argparse
import json
import os
import statistics
import time
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from export import tflite  # noqa: E402
from keras_sr import presets  # noqa: E402
from keras_sr.data.images import list_images, read_image  # noqa: E402
from keras_sr.precision import describe_device  # noqa: E402

PRESET = "realesrgan-x4plus"
EDGES = ("conv_first", "conv_last")
TAIL = EDGES + ("conv_up1", "conv_up2", "conv_hr")
SHARED_BSD200 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "BSD200")


def random_crops(folder, count, size=64, seed=0):
    rng = np.random.default_rng(seed)
    paths = list_images(folder)
    crops = []
    for index in range(count):
        image = read_image(paths[index % len(paths)])
        top = rng.integers(0, image.shape[0] - size + 1)
        left = rng.integers(0, image.shape[1] - size + 1)
        crops.append(image[top:top + size, left:left + size].astype(np.float32) / 255.0)
    return crops


def measure(model, flatbuffer, photos, threads, repeats):
    """PSNR against Keras (`export.tflite.parity_report`) and LR 64 latency."""
    report = tflite.parity_report(model, flatbuffer, photos, "int8", num_threads=threads)
    values = [row["psnr_db"] for row in report["per_image"]]
    interpreter = tflite.interpreter(flatbuffer, num_threads=threads)
    image = photos[0][None]
    tflite.run(interpreter, image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tflite.run(interpreter, image)
        times.append(time.perf_counter() - start)
    return {"min_psnr_db": min(values), "mean_psnr_db": float(np.mean(values)),
            "lr64_s": statistics.median(times), "file_mib": len(flatbuffer) / 2**20}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", default=SHARED_BSD200,
                        help="a folder of photos for calibration crops (default: the shared "
                             "BSD200)")
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    model = presets.load_model(PRESET)
    photos = tflite.crops(list_images(str(resources.files("keras_sr.data") / "samples")))
    calibration = random_crops(args.calibration, args.crops)
    variants = [
        ("float32", "none", None, ()),
        ("int8, calibrated on the measured photos", "int8", photos, ()),
        (f"int8, {args.crops} crops of {os.path.basename(os.path.normpath(args.calibration))}",
         "int8", calibration, ()),
        ("int8, first and last conv float", "int8", calibration, EDGES),
        ("int8, first, upsampling, HR and last convs float", "int8", calibration, TAIL),
    ]
    rows = []
    print(f"{PRESET}, {describe_device()}, {args.threads} threads")
    print("| variant | file MiB | min PSNR vs Keras fp32 | mean PSNR | LR 64 s | vs TFLite fp32 |")
    print("|---|---|---|---|---|---|")
    for label, quantize, images, float_layers in variants:
        start = time.perf_counter()
        flatbuffer = tflite.convert(model, quantize=quantize, representative_images=images,
                                    float_layers=float_layers)
        row = {"variant": label, "convert_s": time.perf_counter() - start,
               **measure(model, flatbuffer, photos, args.threads, args.repeats)}
        rows.append(row)
        print(f"| {label} | {row['file_mib']:.1f} | {row['min_psnr_db']:.1f} dB | "
              f"{row['mean_psnr_db']:.1f} dB | {row['lr64_s']:.3f} | "
              f"{row['lr64_s'] / rows[0]['lr64_s']:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": describe_device(), "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    main()
