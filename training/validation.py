"""Validation during training: PSNR / SSIM on held-out images by the papers' protocol, NIQE and
LPIPS where they are asked for, and a comparison image for TensorBoard."""

import os

import numpy as np

from keras_sr.comparison import comparison_sheet
from keras_sr.data.degradations import imresize, modcrop, quantize
from keras_sr.data.images import read_image
from keras_sr.metrics import psnr, ssim, to_uint8
from keras_sr.niqe import BLOCK as NIQE_BLOCK
from keras_sr.niqe import niqe_blocks
from training.evaluate import bicubic_upscaler, optional_lpips, optional_niqe

# Which way is better, for train.best_metric.
HIGHER_IS_BETTER = {"psnr_y": True, "niqe": False, "lpips": False}


class Validation:
    """PSNR / SSIM on held-out HR images, the papers' protocol, plus a comparison image;
    NIQE and LPIPS too when `extra` names them (GAN runs: perceptual quality is their claim).

    The LR (and bicubic) images are made once, exactly as `python -m training.evaluate` makes
    them: modcrop, MATLAB-compatible bicubic, rounded to uint8. NIQE and LPIPS use the same
    `scale`-pixel border crop as PSNR.

    Args:
        paths: held-out HR images.
        scale: the SR factor.
        extra: any of "niqe", "lpips".
        lpips_metric: a `keras_sr.lpips.LPIPS`, needed for "lpips".
        required: the extras that must be computable; NIQE is otherwise left out when no
            held-out image holds two 96 x 96 blocks after the border crop.
    Raises:
        ValueError: a required NIQE on held-out images too small for it.
    """

    def __init__(self, paths, scale, extra=(), lpips_metric=None, required=()):
        self.scale = scale
        self.extra = tuple(extra)
        self.lpips_metric = lpips_metric
        bicubic = bicubic_upscaler(scale)
        self.images = []
        for path in paths:
            hr = modcrop(read_image(path), scale)
            lr = quantize(imresize(hr, 1 / scale))
            self.images.append((os.path.basename(path), lr, bicubic(lr), hr))
        if "niqe" in self.extra and not any(niqe_blocks(hr.shape, scale) >= 2
                                            for _, _, _, hr in self.images):
            if "niqe" in required:
                raise ValueError(f"NIQE needs a held-out image with two {NIQE_BLOCK}x"
                                 f"{NIQE_BLOCK} blocks after the border crop; none has")
            self.extra = tuple(name for name in self.extra if name != "niqe")

    def bicubic_psnr_y(self):
        return float(np.mean([psnr(bicubic, hr, self.scale)
                              for _, _, bicubic, hr in self.images]))

    def run(self, upscale):
        """`({"psnr_y", "ssim_y"[, "niqe", "lpips"]: mean}, sheet)` of `upscale` (float LR batch
        -> float SR batch); a NIQE / LPIPS mean is over the images that have one."""
        values = {name: [] for name in ("psnr_y", "ssim_y") + self.extra}
        sheet = None
        for index, (_, lr, bicubic, hr) in enumerate(self.images):
            sr = to_uint8(upscale(lr[None].astype(np.float32) / 255.0)[0])
            values["psnr_y"].append(psnr(sr, hr, self.scale))
            values["ssim_y"].append(ssim(sr, hr, self.scale))
            if "niqe" in self.extra:
                values["niqe"].append(optional_niqe(sr, self.scale))
            if "lpips" in self.extra:
                values["lpips"].append(optional_lpips(self.lpips_metric, sr, hr, self.scale))
            if index == 0:
                sheet = comparison_sheet([("bicubic", bicubic),
                                          (f"SR {values['psnr_y'][0]:.2f} dB", sr),
                                          ("HR", hr)], title=f"held out: {self.images[0][0]}")
        means = {}
        for name, found in values.items():
            found = [value for value in found if value is not None]
            means[name] = float(np.mean(found)) if found else None
        return means, sheet
