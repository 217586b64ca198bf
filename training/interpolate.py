"""`python -m training.interpolate`: ESRGAN §3.4 network interpolation.

    python -m training.interpolate --psnr A.keras --gan B.keras --alpha 0.8 --out C.keras
    python -m training.interpolate --psnr A.keras --gan B.keras --sweep 0,0.2,0.4,0.6,0.8,1 \
        --data Set14/ --scale 4 [--metrics psnr,ssim,niqe,lpips] [--json OUT.json]

Every weight becomes (1 - alpha) * PSNR-oriented + alpha * GAN, giving a generator between the
smooth PSNR model (alpha 0) and the sharp, artefact-prone GAN model (alpha 1) without
retraining. Both must be the same architecture (class, configuration and weight shapes); a run
directory may be given for its `generator_last.keras`. The output is never overwritten without
`--overwrite`. `--sweep` writes no model: it evaluates each alpha on the `--data` folders with
`training.evaluate`'s protocol and prints the perception-distortion trade-off (PSNR against
LPIPS and NIQE, ESRGAN §4.4's figure as numbers), so the alpha can be chosen before writing it.
"""

import argparse
import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_SR_PARSING"] = "1"  # answer --help before TensorFlow: keras_sr.startup


# TensorFlow-free; this module's API as before.
from keras_sr.interpolation import architecture, interpolate  # noqa: E402, F401


def resolve_generator_path(path):
    return os.path.join(path, "generator_last.keras") if os.path.isdir(path) else path


def parse_alphas(text):
    """`0,0.2,1` -> (0.0, 0.2, 1.0), each in [0, 1] (argparse type)."""
    try:
        alphas = tuple(float(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep takes numbers like 0,0.5,1, got {text!r}")
    if not alphas or any(not 0.0 <= alpha <= 1.0 for alpha in alphas):
        raise argparse.ArgumentTypeError(f"--sweep alphas must be in [0, 1], got {text!r}")
    return alphas


def sweep(models, alphas, datasets, scale, metrics, lpips_metric=None, progress=False):
    """`[{"alpha", "dataset", metric means...}]` for each alpha and dataset folder."""
    from training.evaluate import METRIC_GROUPS, evaluate_folder, model_upscaler

    rows = []
    for alpha in alphas:
        upscale = model_upscaler(interpolate(models["psnr"], models["gan"], alpha), scale,
                                 f"alpha {alpha:g}")
        for name, folder in datasets.items():
            results, _ = evaluate_folder(folder, upscale, scale, progress=progress,
                                         metrics=metrics, lpips_metric=lpips_metric)
            rows.append({"alpha": alpha, "dataset": name,
                         **{key: results[key] for group in metrics
                            for key in METRIC_GROUPS[group] if key in results}})
    return rows


def print_sweep(rows):
    columns = [(key, title, spec) for key, title, spec in (
        ("psnr_y", "PSNR-Y", ".3f"), ("ssim_y", "SSIM-Y", ".4f"), ("lpips", "LPIPS", ".4f"),
        ("niqe", "NIQE", ".3f")) if key in rows[0]]
    print(f"{'dataset':<14}{'alpha':>6}" + "".join(f"{title:>9}" for _, title, _ in columns))
    for row in rows:
        print(f"{row['dataset']:<14}{row['alpha']:>6g}" + "".join(
            f"{row[key]:>9{spec}}" if row[key] is not None else f"{'-':>9}"
            for key, _, spec in columns))


def main(argv=None, prog="python -m training.interpolate"):
    from keras_sr import outputs

    parser = argparse.ArgumentParser(prog=prog, description=outputs.first_paragraph(__doc__))
    parser.add_argument("--psnr", required=True, help="PSNR-oriented generator (.keras or run)")
    parser.add_argument("--gan", required=True, help="GAN generator (.keras or run)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--alpha", type=outputs.float_in(0, 1, low_open=False),
                      help="0 = PSNR model, 1 = GAN (with --out)")
    mode.add_argument("--sweep", type=parse_alphas,
                      help="alphas to evaluate, e.g. 0,0.2,0.4,0.6,0.8,1 (with --data)")
    parser.add_argument("-o", "--out", help="output .keras file (with --alpha)")
    parser.add_argument("--data", action="append", help="folder of HR images (with --sweep; "
                        "repeat for several)")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), help="with --sweep")
    parser.add_argument("--metrics", help="with --sweep: from psnr,ssim,niqe,lpips (default: "
                        "psnr,lpips,niqe, LPIPS when its weights are at hand)")
    parser.add_argument("--json", help="with --sweep: also write the rows here")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)
    if args.alpha is not None:
        if not args.out:
            parser.error("--alpha needs --out")
        if not args.out.endswith(".keras"):
            parser.error(f"--out must be a .keras file, got {args.out!r}")
    elif not args.data or args.scale is None:
        parser.error("--sweep needs --data and --scale")
    paths = {name: resolve_generator_path(getattr(args, name)) for name in ("psnr", "gan")}
    from keras_sr import startup

    startup.load()
    from keras_sr import atomic, presets

    try:
        if args.alpha is not None:
            outputs.writable_file(args.out, args.overwrite, what="--out")
        else:
            for folder in args.data:
                if not os.path.isdir(folder):
                    raise ValueError(f"--data {folder!r} is not a folder")
            if args.json:
                outputs.writable_file(args.json, args.overwrite, what="--json")
        for name, path in paths.items():
            if not os.path.isfile(path):
                raise ValueError(f"--{name}: no generator at {path!r}")
        models = {name: presets.load_model(path) for name, path in paths.items()}
        # Refuses different architectures before any evaluation.
        merged = interpolate(models["psnr"], models["gan"], args.alpha or 0.0)
        if args.sweep:
            from training.evaluate import lpips_for, parse_metrics

            requested = parse_metrics(args.metrics) if args.metrics else None
            metrics, lpips_metric = lpips_for(
                requested or ("psnr", "lpips", "niqe"), requested is not None, "alex",
                log=lambda line: print(f"{prog}: {line}", file=sys.stderr))
    except (ValueError, OSError, RuntimeError, argparse.ArgumentTypeError) as error:
        # One line, no usage text: the arguments parsed; what they name is wrong.
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if args.sweep:
        from pathlib import Path

        datasets = {Path(folder.rstrip("/\\")).name or folder: folder for folder in args.data}
        rows = sweep(models, args.sweep, datasets, args.scale, metrics, lpips_metric)
        print_sweep(rows)
        if args.json:
            import json

            atomic.write_bytes(args.json, json.dumps(rows, indent=2).encode())
        return 0
    with atomic.atomic_path(args.out) as temporary:
        merged.save(temporary)
    print(f"wrote {args.out}: {1 - args.alpha:g} x {paths['psnr']} + {args.alpha:g} x "
          f"{paths['gan']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
