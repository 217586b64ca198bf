"""`python -m training.evaluate`: PSNR / SSIM of a model on benchmark folders, papers' protocol.

    python -m training.evaluate --model MODEL --data DIR [--data DIR ...] --scale 4
        [--json OUT.json] [--save-images DIR] [--overwrite]

MODEL is a `.keras` file or `bicubic` (the baseline every table starts with). Each HR image is
modcropped to a multiple of the scale, its LR image made with MATLAB-compatible bicubic and
rounded to uint8 (as the papers' MATLAB scripts did), and the SR result measured on the Y channel
and on RGB after cropping `scale` pixels from every border. Grayscale images (Set14's bridge)
are measured on their one channel; a model sees them as three equal channels and its output is
averaged back to one. An unreadable image is reported and skipped, and the exit status is then 1.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from keras_sr.data.degradations import imresize, quantize
from keras_sr.data.images import UnreadableImageError, list_images, read_image, write_image
from keras_sr.metrics import psnr, ssim, to_uint8

METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


def modcrop(image, scale):
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def bicubic_upscaler(scale):
    def upscale(lr_image):
        return quantize(imresize(lr_image, scale))
    return upscale


def load_upscaler(model_spec, scale):
    """A function uint8 LR image -> uint8 SR image, for `bicubic`, a `.keras` file or a preset."""
    if model_spec == "bicubic":
        return bicubic_upscaler(scale)
    from keras_sr import inference, presets

    model = presets.load_model(model_spec)  # a .keras file or a preset name
    model_scale = getattr(model, "scale", None)
    if model_scale is not None and model_scale != scale:
        raise ValueError(f"{model_spec} is a x{model_scale} model but --scale is {scale}")
    # One trace for every image size: evaluation images all differ.
    serve = inference.keras_upscaler(model)

    def upscale(lr_image):
        gray = lr_image.ndim == 2
        rgb = np.repeat(lr_image[..., None], 3, axis=-1) if gray else lr_image
        sr = serve(rgb[None].astype(np.float32) / 255.0)[0]
        expected = (rgb.shape[0] * scale, rgb.shape[1] * scale, 3)
        if sr.shape != expected:
            raise ValueError(f"{model_spec} returned {sr.shape} for a {rgb.shape} input; "
                             f"a x{scale} model must return {expected}")
        return to_uint8(sr.mean(axis=-1) if gray else sr)

    return upscale


def measure(sr_image, hr_image, scale):
    return {
        "psnr_y": psnr(sr_image, hr_image, scale, "y"),
        "ssim_y": ssim(sr_image, hr_image, scale, "y"),
        "psnr_rgb": psnr(sr_image, hr_image, scale, "rgb"),
        "ssim_rgb": ssim(sr_image, hr_image, scale, "rgb"),
    }


def evaluate_folder(folder, upscale, scale, save_dir=None, progress=True):
    """Measures every image in `folder`; returns (results dict, list of skipped-file messages)."""
    import keras

    paths = list_images(folder)
    images, skipped = {}, []
    bar = keras.utils.Progbar(len(paths), unit_name="image") if progress else None
    for index, path in enumerate(paths, start=1):
        name = os.path.basename(path)
        try:
            hr_image = modcrop(read_image(path, keep_gray=True), scale)
            if min(hr_image.shape[:2]) < scale * 4:
                raise UnreadableImageError(path, f"too small for x{scale} evaluation")
        except UnreadableImageError as error:
            skipped.append(str(error))
            print(f"\nskipped: {error}", file=sys.stderr)
            if bar:
                bar.update(index)
            continue
        lr_image = quantize(imresize(hr_image, 1 / scale))
        start = time.perf_counter()
        sr_image = upscale(lr_image)
        seconds = time.perf_counter() - start
        images[name] = {**measure(sr_image, hr_image, scale), "seconds": seconds}
        if save_dir is not None:
            save_comparison(save_dir, name, lr_image, hr_image, sr_image, scale,
                            images[name]["psnr_y"])
        if bar:
            bar.update(index, values=[("psnr_y", images[name]["psnr_y"])])
    summary = {key: float(np.mean([m[key] for m in images.values()])) if images else None
               for key in METRICS + ("seconds",)}
    return {**summary, "images": images}, skipped


def save_comparison(save_dir, name, lr_image, hr_image, sr_image, scale, sr_psnr):
    """Writes the SR image and a sheet: nearest LR | bicubic | SR | HR, full and zoomed."""
    from keras_sr.comparison import comparison_sheet

    stem = Path(name).stem
    write_image(Path(save_dir) / f"{stem}.png", sr_image)
    bicubic = bicubic_upscaler(scale)(lr_image)
    nearest = lr_image.repeat(scale, axis=0).repeat(scale, axis=1)
    panels = [
        ("LR (nearest)", nearest),
        (f"bicubic {psnr(bicubic, hr_image, scale):.2f} dB", bicubic),
        (f"SR {sr_psnr:.2f} dB", sr_image),
        ("HR", hr_image),
    ]
    write_image(Path(save_dir) / f"{stem}_comparison.png", comparison_sheet(panels))


def print_table(dataset, results):
    print(f"\n{dataset}")
    header = f"{'image':<24}{'PSNR-Y':>9}{'SSIM-Y':>9}{'PSNR-RGB':>10}{'SSIM-RGB':>10}{'s/img':>8}"
    print(header)
    print("-" * len(header))
    rows = list(results["images"].items()) + [("mean", results)]
    for name, values in rows:
        if values["psnr_y"] is None:
            print(f"{name:<24}{'(no image measured)':>46}")
            continue
        print(f"{name:<24}{values['psnr_y']:>9.3f}{values['ssim_y']:>9.4f}"
              f"{values['psnr_rgb']:>10.3f}{values['ssim_rgb']:>10.4f}{values['seconds']:>8.3f}")


def dataset_name(folder):
    return Path(folder.rstrip("/\\")).name or str(folder)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.evaluate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="a .keras file, a preset (e.g. realesrgan-x4plus), or 'bicubic'")
    parser.add_argument("--data", required=True, action="append",
                        help="folder of HR images (repeat for several datasets)")
    parser.add_argument("--scale", required=True, type=int, choices=(2, 3, 4))
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--save-images", help="write SR images and comparison sheets here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file or saved images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    names = [dataset_name(folder) for folder in args.data]
    if len(set(names)) != len(names):
        parser.error(f"--data folders must have distinct names, got {names}")
    for folder in args.data:
        if not os.path.isdir(folder):
            parser.error(f"--data {folder!r} is not a folder")
    if args.json and os.path.exists(args.json) and not args.overwrite:
        parser.error(f"{args.json} exists; pass --overwrite to replace it")
    if args.save_images and not args.overwrite:
        for name in names:
            target = Path(args.save_images) / name
            if target.exists() and any(target.iterdir()):
                parser.error(f"{target} already holds images; pass --overwrite to replace them")
    try:
        upscale = load_upscaler(args.model, args.scale)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))

    report, all_skipped = {}, []
    for folder, name in zip(args.data, names):
        save_dir = Path(args.save_images) / name if args.save_images else None
        results, skipped = evaluate_folder(folder, upscale, args.scale, save_dir,
                                           progress=not args.no_progress)
        report[name] = results
        all_skipped.extend(skipped)
        print_table(name, results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    if all_skipped:
        print(f"\n{len(all_skipped)} image(s) skipped:", file=sys.stderr)
        for message in all_skipped:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
