"""NIQE beside PSNR / SSIM on the benchmark sets, and what NIQE costs.

    python -m benchmarks.perceptual_metrics [--data-root ../shared/data] [--sets Set5 Set14]
        [--models bicubic realesrgan-x4plus] [--json OUT]

Runs `training.evaluate`'s protocol (x4, modcrop, MATLAB bicubic LR rounded to uint8, Y channel,
4-pixel border) with `--metrics psnr,ssim,niqe` for each model on each set, and reports the mean
PSNR-Y, SSIM-Y and NIQE of the SR images, the NIQE of the HR images for scale, and the median
seconds of one `keras_sr.metrics.niqe` call per image of each set (after its graph is traced),
and of one LPIPS (AlexNet and VGG16) distance per image: those with random trunk and head
weights of the real shapes, for timing only, since the ImageNet trunks cannot be downloaded
here (LPIPS values are then not reported). Models run in float32.
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_sr.data.degradations import modcrop  # noqa: E402
from keras_sr.data.images import list_images, read_image  # noqa: E402
from keras_sr.metrics import niqe  # noqa: E402
from keras_sr.precision import describe_device  # noqa: E402
from training.evaluate import evaluate_folder, load_upscaler  # noqa: E402

SCALE = 4


def niqe_seconds(folder):
    images = [modcrop(read_image(path), SCALE) for path in list_images(folder)]
    niqe(images[0], crop_border=SCALE)  # trace
    times = []
    for image in images:
        start = time.perf_counter()
        niqe(image, crop_border=SCALE)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def trunk_state(net, seed=0):
    """torchvision `features.N` weights of the LPIPS trunk's convs, He-normal random (for
    timing here, and for the LPIPS tests)."""
    import numpy as np

    from keras_sr.lpips import TRUNKS

    rng = np.random.default_rng(seed)
    state, channels = {}, 3
    for op in TRUNKS[net][0]:
        if op[0] == "conv":
            _, index, filters, kernel, _, _ = op
            scale = np.sqrt(2.0 / (kernel * kernel * channels))
            state[f"features.{index}.weight"] = (
                rng.standard_normal((filters, channels, kernel, kernel)) * scale
            ).astype(np.float32)
            state[f"features.{index}.bias"] = (rng.standard_normal(filters) * 0.01).astype(
                np.float32)
            channels = filters
    return state


def linear_state(net, seed=1):
    """Random linear heads (`lin<k>.model.1.weight`) for the LPIPS trunk's five taps."""
    import numpy as np

    from keras_sr.lpips import TRUNKS

    rng = np.random.default_rng(seed)
    plan = TRUNKS[net][0]
    channels = [op[2] for op, following in zip(plan, plan[1:])
                if op[0] == "conv" and following[0] == "tap"]
    return {f"lin{k}.model.1.weight": rng.random((1, c, 1, 1)).astype(np.float32)
            for k, c in enumerate(channels)}


def random_lpips(net, folder):
    """An LPIPS with random weights of the real shapes (timing only)."""
    from keras_sr.convert import torch as torch_files
    from keras_sr.lpips import LPIPS

    paths = [os.path.join(folder, f"{net}-{part}.pth") for part in ("trunk", "heads")]
    for path, state in zip(paths, (trunk_state(net), linear_state(net))):
        torch_files.save(path, state, wrapper=None)
    return LPIPS(net, *paths)


def lpips_seconds(folder, net, scratch):
    metric = random_lpips(net, scratch)
    images = [modcrop(read_image(path), SCALE).astype("float32") / 255.0
              for path in list_images(folder)]
    metric(images[0], images[0])  # trace
    times = []
    for image in images:
        start = time.perf_counter()
        float(metric(image, image[::-1]))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--models", nargs="+", default=["bicubic", "realesrgan-x4plus"])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for model in args.models:
        upscale = load_upscaler(model, SCALE)
        for dataset in args.sets:
            folder = os.path.join(args.data_root, dataset)
            results, _ = evaluate_folder(folder, upscale, SCALE, progress=False,
                                         metrics=("psnr", "ssim", "niqe"))
            rows.append({"model": model, "set": dataset, "psnr_y": results["psnr_y"],
                         "ssim_y": results["ssim_y"], "niqe": results["niqe"],
                         "niqe_hr": results["niqe_hr"]})
    import tempfile

    timing = {dataset: niqe_seconds(os.path.join(args.data_root, dataset))
              for dataset in args.sets}
    with tempfile.TemporaryDirectory() as scratch:
        lpips_timing = {f"{dataset} {net}": lpips_seconds(
            os.path.join(args.data_root, dataset), net, scratch)
            for dataset in args.sets for net in ("alex", "vgg")}
    print(f"x{SCALE}, {describe_device()}, {platform.machine()}")
    print(f"{'model':<20}{'set':<8}{'PSNR-Y':>8}{'SSIM-Y':>8}{'NIQE':>8}{'NIQE HR':>9}")
    for row in rows:
        print(f"{row['model']:<20}{row['set']:<8}{row['psnr_y']:>8.3f}{row['ssim_y']:>8.4f}"
              f"{row['niqe']:>8.3f}{row['niqe_hr']:>9.3f}")
    for dataset, seconds in timing.items():
        print(f"NIQE of one {dataset} image: {seconds * 1000:.0f} ms (median)")
    for name, seconds in lpips_timing.items():
        print(f"LPIPS ({name.split()[1]}) of one {name.split()[0]} image pair: "
              f"{seconds * 1000:.0f} ms (median)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": rows, "niqe_seconds": timing, "lpips_seconds": lpips_timing,
                       "device": describe_device()},
                      handle, indent=2)
    return 0


if __name__ == "__main__":
    main()
