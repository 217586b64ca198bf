"""`python -m training.evaluate`: PSNR, SSIM, NIQE and LPIPS of a model on benchmark folders,
measured as the papers measured them.

    python -m training.evaluate --model MODEL --data DIR [--data DIR ...] --scale 4
        [--metrics psnr,ssim,niqe,lpips] [--lpips-net alex] [--json OUT.json]
        [--save-images DIR] [--overwrite]

MODEL is a `.keras` file or `bicubic` (the baseline every table starts with). Each HR image is
modcropped to a multiple of the scale, its LR image made with MATLAB-compatible bicubic and
rounded to uint8 (as the papers' MATLAB scripts did), and the SR result measured on the Y channel
and on RGB after cropping `scale` pixels from every border. Grayscale images (Set14's bridge)
are measured on their one channel; a model sees them as three equal channels and its output is
averaged back to one. NIQE (no-reference, lower is more natural; `keras_sr.metrics.niqe`, equal
to MATLAB's) is measured on the SR image and, to show the scale, on the bicubic and HR images,
with the same border crop; an image with fewer than two 96 x 96 blocks has no NIQE. LPIPS
(full-reference, lower is closer; `keras_sr.lpips`, equal to the `lpips` package) is measured
on the SR and bicubic images against HR, with the same crop, when its weights can be had. An
unreadable image is reported and skipped, and the exit status is then 1.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    os.environ["KERAS_SR_PARSING"] = "1"  # answer --help before TensorFlow: keras_sr.startup

# isort: split
import numpy as np

# TensorFlow-free modules only, so that the arguments are parsed before TensorFlow starts; the
# metrics (Keras) are imported where they are used.
from keras_sr import atomic, outputs
from keras_sr.data.degradations import imresize, modcrop, quantize
from keras_sr.data.images import (
    IMAGE_EXTENSIONS,
    UnreadableImageError,
    list_images,
    read_image,
    write_image,
)
from keras_sr.niqe import niqe
from keras_sr.precision import PRECISIONS

# `--metrics` names and the values each adds.
METRIC_GROUPS = {"psnr": ("psnr_y", "psnr_rgb"), "ssim": ("ssim_y", "ssim_rgb"),
                 "niqe": ("niqe", "niqe_bicubic", "niqe_hr"),
                 "lpips": ("lpips", "lpips_bicubic")}


def bicubic_upscaler(scale):
    def upscale(lr_image):
        return quantize(imresize(lr_image, scale))
    return upscale


def load_upscaler(model_spec, scale, precision=None, log=None):
    """A function uint8 LR image -> uint8 SR image, for `bicubic`, a `.keras` file or a preset;
    a model runs at `precision` (`keras_sr.precision`; None: float32, this command's
    default), said through `log` (one line: what runs the model, at which precision and
    why)."""
    if model_spec == "bicubic":
        return bicubic_upscaler(scale)
    from keras_sr import precision as precisions

    model, chosen, reason = precisions.load_model(model_spec, precision or "float32")
    if precision is None:
        reason = ("evaluate's default, so that the figures are the model's and not the "
                  "arithmetic's; --precision auto picks per device")
    if log:
        log(f"{model_spec} on {precisions.describe_device()} at {chosen} ({reason})")
    return model_upscaler(model, scale, model_spec)


def model_upscaler(model, scale, name="the model"):
    """A function uint8 LR image -> uint8 SR image running `model` (grayscale images as three
    equal channels, averaged back)."""
    from keras_sr import inference
    from keras_sr.metrics import to_uint8

    model_scale = getattr(model, "scale", None)
    if model_scale is not None and model_scale != scale:
        raise ValueError(f"{name} is a x{model_scale} model but --scale is {scale}")
    # One trace for every image size: evaluation images all differ.
    serve = inference.keras_upscaler(model)

    def upscale(lr_image):
        gray = lr_image.ndim == 2
        rgb = np.repeat(lr_image[..., None], 3, axis=-1) if gray else lr_image
        sr = serve(rgb[None].astype(np.float32) / 255.0)[0]
        expected = (rgb.shape[0] * scale, rgb.shape[1] * scale, 3)
        if sr.shape != expected:
            raise ValueError(f"{name} returned {sr.shape} for a {rgb.shape} input; "
                             f"a x{scale} model must return {expected}")
        return to_uint8(sr.mean(axis=-1) if gray else sr)

    return upscale


def optional_niqe(image, scale):
    """NIQE with `scale` pixels cropped per side, or None for an image under two blocks."""
    try:
        return niqe(image, crop_border=scale)
    except ValueError:
        return None


def optional_lpips(lpips_metric, image, hr_image, scale):
    """LPIPS of `image` against `hr_image` with `scale` pixels cropped per side, or None for
    an image too small for the trunk."""
    from keras_sr.metrics import crop_border, to_uint8

    image, hr_image = (crop_border(to_uint8(x), scale).astype(np.float32) / 255.0
                       for x in (image, hr_image))
    if image.ndim == 2:  # grayscale: the trunk sees three equal channels
        image, hr_image = (np.repeat(x[..., None], 3, -1) for x in (image, hr_image))
    try:
        return float(lpips_metric(image, hr_image))
    except ValueError:
        return None


def measure(sr_image, hr_image, scale, metrics=("psnr", "ssim"), bicubic_image=None,
            lpips_metric=None):
    from keras_sr.metrics import psnr, ssim

    values = {}
    if "psnr" in metrics:
        values.update(psnr_y=psnr(sr_image, hr_image, scale, "y"),
                      psnr_rgb=psnr(sr_image, hr_image, scale, "rgb"))
    if "ssim" in metrics:
        values.update(ssim_y=ssim(sr_image, hr_image, scale, "y"),
                      ssim_rgb=ssim(sr_image, hr_image, scale, "rgb"))
    if "niqe" in metrics:
        values.update(niqe=optional_niqe(sr_image, scale),
                      niqe_bicubic=optional_niqe(bicubic_image, scale),
                      niqe_hr=optional_niqe(hr_image, scale))
    if "lpips" in metrics:
        values.update(lpips=optional_lpips(lpips_metric, sr_image, hr_image, scale),
                      lpips_bicubic=optional_lpips(lpips_metric, bicubic_image, hr_image,
                                                   scale))
    return values


def parse_metrics(text):
    """`psnr,ssim,niqe,lpips` -> a tuple of known names (argparse type)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRIC_GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown metric {', '.join(unknown) or '(none)'}; choose from "
            f"{','.join(METRIC_GROUPS)}")
    return names


def saved_names(path, keep_extension=False):
    """The SR image and comparison sheet `--save-images` writes for `path`."""
    name = Path(path).name if keep_extension else Path(path).stem
    return f"{name}.png", f"{name}_comparison.png"


def evaluate_folder(folder, upscale, scale, save_dir=None, progress=True, paths=None,
                    keep_extension=False, model_name=None, metrics=("psnr", "ssim"),
                    lpips_metric=None):
    """Measures every image in `folder` (or `paths`) on `metrics` (`METRIC_GROUPS` names;
    "lpips" needs `lpips_metric`, a `keras_sr.lpips.LPIPS`); returns (results dict, list of
    skipped-file messages)."""
    import keras

    paths = list_images(folder) if paths is None else paths
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
        bicubic = bicubic_upscaler(scale)(lr_image) \
            if {"niqe", "lpips"} & set(metrics) else None
        images[name] = {**measure(sr_image, hr_image, scale, metrics, bicubic, lpips_metric),
                        "seconds": seconds}
        if save_dir is not None:
            save_comparison(save_dir, saved_names(path, keep_extension), lr_image, hr_image,
                            sr_image, scale, images[name],
                            title=f"{name} x{scale}" + (f", {model_name}" if model_name else ""))
        if bar:
            # Keras' Progbar shows the last value given, not an average: give it the mean.
            key = "psnr_y" if "psnr" in metrics else next(iter(images[name]))
            running = mean_of([m[key] for m in images.values()])
            bar.update(index, values=[(f"mean_{key}", running or 0.0)])
    keys = [key for group in metrics for key in METRIC_GROUPS[group]] + ["seconds"]
    summary = {key: mean_of([m[key] for m in images.values()]) for key in keys}
    return {**summary, "images": images}, skipped


def mean_of(values):
    """The mean of the values that exist (NIQE is None for images under two blocks)."""
    values = [value for value in values if value is not None]
    return float(np.mean(values)) if values else None


def save_comparison(save_dir, names, lr_image, hr_image, sr_image, scale, values,
                    title=None):
    """Writes the SR image and a sheet: nearest LR | bicubic | SR | HR, full and zoomed, under
    `title` (which image, which model), each labelled with what was measured on it."""
    from keras_sr.comparison import comparison_sheet
    from keras_sr.metrics import psnr

    sr_name, sheet_name = names
    write_image(Path(save_dir) / sr_name, sr_image)
    bicubic = bicubic_upscaler(scale)(lr_image)
    nearest = lr_image.repeat(scale, axis=0).repeat(scale, axis=1)

    def label(name, psnr_value, niqe_value, lpips_value=None):
        parts = [name] + ([f"{psnr_value:.2f} dB"] if psnr_value is not None else []) + (
            [f"NIQE {niqe_value:.2f}"] if niqe_value is not None else []) + (
            [f"LPIPS {lpips_value:.3f}"] if lpips_value is not None else [])
        return " ".join(parts)

    panels = [
        ("LR (nearest)", nearest),
        (label("bicubic", psnr(bicubic, hr_image, scale) if "psnr_y" in values else None,
               values.get("niqe_bicubic"), values.get("lpips_bicubic")), bicubic),
        (label("SR", values.get("psnr_y"), values.get("niqe"), values.get("lpips")), sr_image),
        (label("HR", None, values.get("niqe_hr")), hr_image),
    ]
    write_image(Path(save_dir) / sheet_name, comparison_sheet(panels, title=title))


COLUMNS = (("psnr_y", "PSNR-Y", 9, ".3f"), ("ssim_y", "SSIM-Y", 9, ".4f"),
           ("psnr_rgb", "PSNR-RGB", 10, ".3f"), ("ssim_rgb", "SSIM-RGB", 10, ".4f"),
           ("niqe", "NIQE", 8, ".3f"), ("lpips", "LPIPS", 8, ".4f"),
           ("seconds", "s/img", 8, ".3f"))


def print_table(dataset, results):
    print(f"\n{dataset}")
    columns = [column for column in COLUMNS if column[0] in results]
    header = f"{'image':<24}" + "".join(f"{title:>{width}}" for _, title, width, _ in columns)
    print(header)
    print("-" * len(header))
    if not results["images"]:
        print(f"{'mean':<24}{'(no image measured)':>46}")
        return
    rows = list(results["images"].items()) + [("mean", results)]
    for name, values in rows:
        print(f"{name:<24}" + "".join(
            f"{values[key]:>{width}{spec}}" if values.get(key) is not None else f"{'-':>{width}}"
            for key, _, width, spec in columns))
    if results.get("niqe_hr") is not None:
        print(f"NIQE of the bicubic images {results['niqe_bicubic']:.3f}, of the HR images "
              f"{results['niqe_hr']:.3f} (lower is more natural)")
    if results.get("lpips_bicubic") is not None:
        print(f"LPIPS of the bicubic images {results['lpips_bicubic']:.4f} (lower is closer)")


def lpips_for(metrics, explicit, net, log):
    """`(metrics, LPIPS or None)`: LPIPS when asked for; when it is only a default and its
    weights cannot be had, the other metrics, with one line saying why."""
    if "lpips" not in metrics:
        return metrics, None
    from keras_sr.lpips import LPIPS
    from keras_sr.pretrained_files import WeightsUnavailable

    try:
        # Only an explicit request may wait on a download.
        return metrics, LPIPS(net, download=explicit)
    except WeightsUnavailable as error:
        if explicit:
            raise
        log(f"no LPIPS ({error})")
        return tuple(name for name in metrics if name != "lpips"), None


def dataset_name(folder):
    return Path(folder.rstrip("/\\")).name or str(folder)


def plan(args):
    """Every check that needs no model: the data folders and their images, the outputs.
    Returns {dataset name: (folder, image paths)}; raises ValueError / OSError naming the
    problem."""
    names = [dataset_name(folder) for folder in args.data]
    if len(set(names)) != len(names):
        raise ValueError(f"--data folders must have distinct names, got {names}")
    datasets = {}
    for folder, name in zip(args.data, names):
        if not os.path.isdir(folder):
            raise ValueError(f"--data {folder!r} is not a folder")
        try:
            datasets[name] = (folder, list_images(folder))
        except FileNotFoundError:
            raise ValueError(f"--data {folder!r} holds no image files "
                             f"({', '.join(IMAGE_EXTENSIONS)})") from None
    if args.json:
        outputs.writable_file(args.json, args.overwrite, what="--json")
    if args.save_images:
        for name, (_, paths) in datasets.items():
            target = Path(args.save_images) / name
            if not args.overwrite and target.is_dir() and any(target.iterdir()):
                raise FileExistsError(f"{target} already holds images; pass --overwrite to "
                                      "replace them")
            outputs.writable_directory(target, what="--save-images folder")
            outputs.refuse_collisions(
                [(path, target / saved) for path in paths
                 for saved in saved_names(path, args.keep_extension)],
                "pass --keep-extension to name the saved images after the whole file name")
    return datasets


def main(argv=None, prog="python -m training.evaluate"):
    parser = argparse.ArgumentParser(prog=prog, description=outputs.first_paragraph(__doc__))
    parser.add_argument("--model", required=True,
                        help="a .keras file, a preset (e.g. realesrgan-x4plus), or 'bicubic'")
    parser.add_argument("--data", required=True, action="append",
                        help="folder of HR images (repeat for several datasets)")
    parser.add_argument("--scale", required=True, type=int, choices=(2, 3, 4))
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="compute precision of the model (default float32, so that the "
                        "figures are the model's and not the arithmetic's; auto picks "
                        "bfloat16 where it is native and within 45 dB of float32)")
    parser.add_argument("--metrics", type=parse_metrics,
                        help="comma-separated, from psnr,ssim,niqe,lpips (default: all that "
                        "can be computed; LPIPS needs its weights, see the README)")
    parser.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex",
                        help="the LPIPS trunk (default alex)")
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--save-images", help="write SR images and comparison sheets here")
    parser.add_argument("--keep-extension", action="store_true",
                        help="name saved images after the whole file name (x.jpg -> "
                        "x.jpg.png), for folders holding x.png and x.jpg")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file or saved images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)

    def say(line):
        print(f"{prog}: {line}", file=sys.stderr)

    try:
        datasets = plan(args)
        from keras_sr import startup

        startup.load()
        metrics, lpips_metric = lpips_for(
            args.metrics or tuple(METRIC_GROUPS), args.metrics is not None, args.lpips_net,
            log=say)
        upscale = load_upscaler(args.model, args.scale, args.precision, log=say)
    except (ValueError, OSError, RuntimeError) as error:
        # One line, no usage text: the arguments parsed; what they name is wrong.
        say(f"error: {error}")
        return 2

    report, all_skipped = {}, []
    for name, (folder, paths) in datasets.items():
        save_dir = Path(args.save_images) / name if args.save_images else None
        results, skipped = evaluate_folder(folder, upscale, args.scale, save_dir,
                                           progress=not args.no_progress, paths=paths,
                                           keep_extension=args.keep_extension,
                                           model_name=os.path.basename(args.model),
                                           metrics=metrics, lpips_metric=lpips_metric)
        report[name] = results
        all_skipped.extend(skipped)
        print_table(name, results)
    if args.json:
        atomic.write_bytes(args.json, json.dumps(report, indent=2).encode())
    if all_skipped:
        print(f"\n{len(all_skipped)} image(s) skipped:", file=sys.stderr)
        for message in all_skipped:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
