"""Validation during training: PSNR / SSIM on held-out images by the papers' protocol, and a
comparison image for TensorBoard."""

import os

import keras_sr  # noqa: F401  (first: it imports TensorFlow quietly, see keras_sr._quiet)

# isort: split
import numpy as np

from keras_sr.comparison import comparison_sheet
from keras_sr.data.degradations import imresize, modcrop, quantize
from keras_sr.data.images import read_image
from keras_sr.metrics import psnr, ssim, to_uint8
from training.evaluate import bicubic_upscaler


class Validation:
    """PSNR / SSIM on held-out HR images, the papers' protocol, plus a comparison image.

    The LR (and bicubic) images are made once, exactly as `python -m training.evaluate` makes
    them: modcrop, MATLAB-compatible bicubic, rounded to uint8.
    """

    def __init__(self, paths, scale):
        self.scale = scale
        bicubic = bicubic_upscaler(scale)
        self.images = []
        for path in paths:
            hr = modcrop(read_image(path), scale)
            lr = quantize(imresize(hr, 1 / scale))
            self.images.append((os.path.basename(path), lr, bicubic(lr), hr))

    def bicubic_psnr_y(self):
        return float(np.mean([psnr(bicubic, hr, self.scale)
                              for _, _, bicubic, hr in self.images]))

    def run(self, upscale):
        """Mean PSNR-Y / SSIM-Y of `upscale` (float LR batch -> float SR batch) and a sheet."""
        psnrs, ssims, sheet = [], [], None
        for index, (_, lr, bicubic, hr) in enumerate(self.images):
            sr = to_uint8(upscale(lr[None].astype(np.float32) / 255.0)[0])
            psnrs.append(psnr(sr, hr, self.scale))
            ssims.append(ssim(sr, hr, self.scale))
            if index == 0:
                sheet = comparison_sheet([("bicubic", bicubic), (f"SR {psnrs[0]:.2f} dB", sr),
                                          ("HR", hr)], title=f"held out: {self.images[0][0]}")
        return float(np.mean(psnrs)), float(np.mean(ssims)), sheet
