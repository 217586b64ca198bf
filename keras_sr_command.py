"""The `keras-sr` console script, outside the keras_sr package so that it runs before
`keras_sr/__init__.py`: it marks the process as parsing (keras_sr.startup), so that `--help`
and argument errors are answered before TensorFlow is imported, then hands over to
keras_sr.cli."""

import os
import sys


def main(argv=None):
    os.environ["KERAS_SR_PARSING"] = "1"  # keras_sr.startup.PARSING
    from keras_sr import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
