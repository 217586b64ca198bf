"""Bicubic baseline on Set5 / Set14 against the published numbers (Y channel, border = scale).

    python -m benchmarks.bicubic_baseline [--data-root ../shared/data]

Runs the same code as `python -m training.evaluate --model bicubic` and exits 1 when a figure is
more than 0.03 dB or 0.003 SSIM away from the published one (Huang et al. 2015 tables, as quoted
by SRCNN, SRGAN and ESRGAN).
"""

import argparse
import os
import sys

from training.evaluate import bicubic_upscaler, evaluate_folder

# (dataset, scale) -> (PSNR-Y dB, SSIM-Y)
PUBLISHED = {
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 4): (26.00, 0.7027),
    ("Set5", 2): (33.66, 0.9299),
    ("Set14", 2): (30.24, 0.8688),
}
PSNR_TOLERANCE, SSIM_TOLERANCE = 0.03, 0.003


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.path.join("..", "shared", "data"))
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data_root):
        parser.error(f"{args.data_root} is not a folder holding Set5/ and Set14/")

    print("| dataset | scale | PSNR-Y | published | diff | SSIM-Y | published | diff |")
    print("|---|---|---|---|---|---|---|---|")
    failures = 0
    for (dataset, scale), (psnr_published, ssim_published) in PUBLISHED.items():
        results, skipped = evaluate_folder(os.path.join(args.data_root, dataset),
                                           bicubic_upscaler(scale), scale, progress=False)
        psnr_diff = results["psnr_y"] - psnr_published
        ssim_diff = results["ssim_y"] - ssim_published
        ok = abs(psnr_diff) <= PSNR_TOLERANCE and abs(ssim_diff) <= SSIM_TOLERANCE and not skipped
        failures += not ok
        print(f"| {dataset} | x{scale} | {results['psnr_y']:.3f} | {psnr_published:.2f} "
              f"| {psnr_diff:+.3f} | {results['ssim_y']:.4f} | {ssim_published:.4f} "
              f"| {ssim_diff:+.4f} |{'' if ok else ' OUT OF TOLERANCE'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
