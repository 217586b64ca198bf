"""The `keras-sr` command."""

import argparse
import sys
from importlib import metadata

import keras_sr


def versions():
    """keras-sr's version and those of the stack it runs on, read without importing TensorFlow."""
    parts = [f"keras-sr {keras_sr.__version__}"]
    for package in ("tensorflow", "keras"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} not installed")
    return ", ".join(parts)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-sr",
        description="SRGAN and ESRGAN super-resolution for TensorFlow 2 / Keras 3. "
        "Training: python -m training.fit; evaluation: python -m training.evaluate.",
    )
    parser.add_argument("--version", action="version", version=versions())
    parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        print("\nkeras-sr: no command given (upscale, convert and friends are not there yet)",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
