"""`python -m training.interpolate`: ESRGAN §3.4 network interpolation.

    python -m training.interpolate --psnr A.keras --gan B.keras --alpha 0.8 --out C.keras

Every weight becomes (1 - alpha) * PSNR-oriented + alpha * GAN, giving a generator between the
smooth PSNR model (alpha 0) and the sharp, artefact-prone GAN model (alpha 1) without
retraining. Both must be the same architecture (class, configuration and weight shapes); a run
directory may be given for its `generator_last.keras`. The output is never overwritten without
`--overwrite`.
"""

import argparse
import os
import sys


def resolve_generator_path(path):
    return os.path.join(path, "generator_last.keras") if os.path.isdir(path) else path


def architecture(model):
    config = dict(model.get_config())
    config.pop("name", None)
    return type(model).__name__, config, [tuple(w.shape) for w in model.weights]


def interpolate(psnr_model, gan_model, alpha):
    """A new model of `gan_model`'s architecture with interpolated weights.

    Raises:
        ValueError: if alpha is outside [0, 1] or the models' architectures differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {alpha}")
    psnr_arch, gan_arch = architecture(psnr_model), architecture(gan_model)
    if psnr_arch != gan_arch:
        differences = [key for key in set(psnr_arch[1]) | set(gan_arch[1])
                       if psnr_arch[1].get(key) != gan_arch[1].get(key)]
        detail = (f"{psnr_arch[0]} vs {gan_arch[0]}" if psnr_arch[0] != gan_arch[0]
                  else f"configurations differ in {sorted(differences)}" if differences
                  else "weight shapes differ")
        raise ValueError(f"cannot interpolate models of different architectures: {detail}")
    merged = type(gan_model).from_config(gan_model.get_config())
    merged.set_weights([(1.0 - alpha) * a + alpha * b
                        for a, b in zip(psnr_model.get_weights(), gan_model.get_weights())])
    return merged


def main(argv=None, prog="python -m training.interpolate"):
    from keras_sr import outputs

    parser = argparse.ArgumentParser(prog=prog,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--psnr", required=True, help="PSNR-oriented generator (.keras or run)")
    parser.add_argument("--gan", required=True, help="GAN generator (.keras or run)")
    parser.add_argument("--alpha", required=True, type=outputs.float_in(0, 1, low_open=False),
                        help="0 = PSNR model, 1 = GAN")
    parser.add_argument("--out", required=True, help="output .keras file")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".keras"):
        parser.error(f"--out must be a .keras file, got {args.out!r}")
    paths = {name: resolve_generator_path(getattr(args, name)) for name in ("psnr", "gan")}
    from keras_sr import atomic, presets

    try:
        outputs.writable_file(args.out, args.overwrite, what="--out")
        for name, path in paths.items():
            if not os.path.isfile(path):
                raise ValueError(f"--{name}: no generator at {path!r}")
        models = {name: presets.load_model(path) for name, path in paths.items()}
        merged = interpolate(models["psnr"], models["gan"], args.alpha)
    except (ValueError, OSError) as error:
        # One line, no usage text: the arguments parsed; what they name is wrong.
        print(f"training.interpolate: error: {error}", file=sys.stderr)
        return 2
    with atomic.atomic_path(args.out) as temporary:
        merged.save(temporary)
    print(f"wrote {args.out}: {1 - args.alpha:g} x {paths['psnr']} + {args.alpha:g} x "
          f"{paths['gan']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
