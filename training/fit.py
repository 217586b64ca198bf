"""`python -m training.fit`: trains a keras-sr model.

Training itself is not implemented yet (tracked in the training issue): today this command builds
the default generator and says so plainly, exiting with status 1 so no script mistakes it for a
finished run.
"""

import argparse
import sys

NOT_YET = (
    "training is not implemented yet: `python -m training.fit` builds the model but does not "
    "train it. The recipes (srresnet_x4, srgan_x4, rrdb_psnr_x4, esrgan_x4, quick) arrive with "
    "the training issue."
)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m training.fit", description=__doc__.splitlines()[0]
    )
    parser.parse_args(argv)

    from keras_sr.models import RRDBNet

    generator = RRDBNet()
    print(
        f"Built {type(generator).__name__} x{generator.scale}: {generator.num_blocks} blocks, "
        f"{generator.num_features} features, {generator.count_params():,} parameters."
    )
    print(f"keras-sr: {NOT_YET}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
