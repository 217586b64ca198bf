"""What a long run needs around the training step: checkpoints, validation, interruption.

Small pieces the loop in `training/fit.py` calls, rather than one class doing everything.
"""

import json
import os
import signal
import time

import keras_sr  # noqa: F401  (first: it imports TensorFlow quietly, see keras_sr._quiet)

# isort: split
import numpy as np
import tensorflow as tf

from keras_sr import atomic
from keras_sr.comparison import comparison_sheet
from keras_sr.data.degradations import imresize, quantize
from keras_sr.data.images import read_image
from keras_sr.metrics import psnr, ssim, to_uint8
from training.evaluate import bicubic_upscaler, modcrop


class RunCheckpoints:
    """Generator, discriminator, both optimizers and the step, kept under `run_dir/checkpoints`.

    `tf.train.CheckpointManager` writes the data files first and replaces the small index file
    last, so a crash mid-write leaves the previous checkpoint as the latest; the last `keep` are
    kept. Restoring brings back the weights, the optimizer slots and the step.
    """

    def __init__(self, run_dir, keep, restore_dir=None, **objects):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(step=self.step, **objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=keep)
        self.restore_dir = os.path.join(restore_dir or run_dir, "checkpoints")
        self.restored = None

    def restore(self, log=print):
        """Restores the newest readable checkpoint, if there is one; returns the step reached.

        A checkpoint that cannot be read (truncated or corrupt files) is skipped with a warning
        naming it and the one used instead (`tf.train.CheckpointManager` keeps the last
        `keep`); when none can be read, ValueError names them all.
        """
        state = tf.train.get_checkpoint_state(self.restore_dir)
        if state is None or not state.model_checkpoint_path:
            return 0
        candidates = list(reversed(state.all_model_checkpoint_paths)) or \
            [state.model_checkpoint_path]
        failures = []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, IndexError, AssertionError) as error:
                reason = str(error).strip().splitlines()[0][:200] or type(error).__name__
                failures.append(f"{path}: {reason}")
                continue
            if failures:
                log(f"warning: checkpoint {candidates[0]} cannot be read ({failures[0]}); "
                    f"resuming from {path} instead")
            self.restored = path
            return int(self.step.numpy())
        raise ValueError(f"no readable checkpoint in {self.restore_dir}: "
                         + "; ".join(failures) + " (start a new --output, or remove the "
                         "damaged checkpoints)")

    def save(self, step):
        self.step.assign(step)
        return self.manager.save(checkpoint_number=step)

    @property
    def latest(self):
        return self.manager.latest_checkpoint


class Interruption:
    """SIGINT / SIGTERM set a flag the loop checks after each step (save, then exit)."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


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
        self.best_psnr = -np.inf

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


def write_json(path, content):
    """Writes JSON atomically: a reader never sees half a file."""
    atomic.write_bytes(path, json.dumps(content, indent=2).encode())


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.start
