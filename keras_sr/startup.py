"""How keras-sr starts: what `import keras_sr` loads, and how the commands put that off until
their arguments are parsed.

`import keras_sr` imports TensorFlow and registers every serializable class (networks, layers,
metrics, losses, schedules), so that `keras.saving.load_model("generator.keras")` works right
after it; that takes a few seconds. A command should answer `--help` or a wrong argument at
once, so the entry points (`keras-sr`, `python -m training.fit`, ...) set `KERAS_SR_PARSING=1`
in their own process before they import anything from keras_sr: `keras_sr` then loads nothing
but this module, the modules the parsers need are TensorFlow-free, and the entry point calls
`load()` once its arguments are good. `load()` also sets the environment switches a command's
workload runs faster with, before TensorFlow starts, keeping any value the user set; a library
import sets none:

- training on an x86 Linux CPU where TensorFlow leaves oneDNN off (no AVX512_VNNI / BF16 or
  AMX, such as every AVX2-only CPU): `TF_ENABLE_ONEDNN_OPTS=1`. For a batch of images oneDNN
  runs its brgemm convolutions forward and backward, faster than Eigen's: the rrdb_psnr_x4
  step 0.84x Eigen's (`benchmarks.train_step`, oneDNN held to AVX2 on a 2-core AMD EPYC) and
  1.3-1.45x faster on a real AVX2-only Zen 3; `benchmarks.onednn_verbose --train` names the
  kernels. Inference keeps TensorFlow's default: one image at a time gets oneDNN's
  im2col + GEMM path on AVX2, 1.9-3x slower than Eigen.
- training where oneDNN is off anyway (the user set `TF_ENABLE_ONEDNN_OPTS=0`):
  `TF_CPU_ALLOCATOR_USE_BFC=true`, TensorFlow's own BFC arena for CPU tensors instead of
  malloc / free for each. Eigen's kernels allocate and free many temporaries per step, and the
  kernel time that costs went from 63 s to 17 s and the whole `quick` command from 89 s to 48 s
  (1.9x; `benchmarks.allocator`, 300 steps, 2-core AMD EPYC with oneDNN off). With oneDNN it
  changes nothing (22.0 s vs 21.8 s), and inference is left as it is (the arena keeps what it
  took, which a long tiled upscale does not need). And `KERAS_SR_DENSE_BLOCK=split`: residual
  dense blocks as split sums (keras_sr.layers.residual_dense_block.split_dense_block), as
  Eigen's backward pass over the concatenated inputs is slow: RRDBNet's forward and backward
  0.74x the time, the rrdb_psnr_x4 and esrgan_x4 steps 0.74-0.85x, 0.4-0.5 GB less memory
  (`benchmarks.dense_block`, `benchmarks.train_step`; 2-core AMD EPYC Zen 5, oneDNN off;
  0.82x with Eigen's matrix products held to AVX2). With oneDNN's kernels the split form was
  slower (1.06x with oneDNN held to AVX2, 1.11x with its AVX-512 kernels), so it is not set
  there; nor on other machines (ARM, macOS, Windows), where it has not been measured and where
  TensorFlow may run oneDNN by its own default (e.g. on Linux for Arm Neoverse V1).
- training with oneDNN on an x86 CPU without AVX-512 (oneDNN's AVX2 kernels):
  `KERAS_SR_CONV_WEIGHT_GRADIENT=matmul`, the weight gradients of 3x3 convolutions with 32 or
  more channels as nine matrix products instead of oneDNN's `jit:avx2` backward-weights kernel
  (keras_sr.layers.conv2d; `benchmarks.weight_gradient`: RRDBNet's forward and backward
  0.83x the time on a 2-core AMD EPYC Zen 3). Not set where oneDNN has its AVX-512 kernels:
  there the products were slower (RRDBNet's forward and backward 1.10x the time in float32,
  1.16x in bfloat16, on a 2-core AMD EPYC Zen 5 with AVX512_BF16), nor on GPUs (the layers look
  for one when they are traced).
"""

import os
import sys

PARSING = "KERAS_SR_PARSING"
ALLOCATOR = "TF_CPU_ALLOCATOR_USE_BFC"
# How 3x3 convolutions take their weight gradient in training (keras_sr.layers.conv2d).
WEIGHT_GRADIENT = "KERAS_SR_CONV_WEIGHT_GRADIENT"
WEIGHT_GRADIENT_CHOICES = ("tensorflow", "matmul")
# How residual dense blocks are computed in training (keras_sr.layers.residual_dense_block).
DENSE_BLOCK = "KERAS_SR_DENSE_BLOCK"
DENSE_BLOCK_CHOICES = ("concatenate", "split")
# What load() set, and why, for the command's status line.
SWITCHES = {}


def _choice(variable, choices, what):
    """`variable`'s value, lower-cased (the first of `choices` when unset); a value that is not
    one of them is a ValueError naming it and the choices."""
    chosen = os.environ.get(variable, "").strip().lower() or choices[0]
    if chosen not in choices:
        raise ValueError(f"{variable}={os.environ[variable]!r} is not a {what} choice; "
                         f"expected one of {', '.join(choices)}")
    return chosen


def weight_gradient_choice():
    """`KERAS_SR_CONV_WEIGHT_GRADIENT`'s value ("tensorflow" when unset; see _choice)."""
    return _choice(WEIGHT_GRADIENT, WEIGHT_GRADIENT_CHOICES, "weight-gradient")


def dense_block_choice():
    """`KERAS_SR_DENSE_BLOCK`'s value ("concatenate" when unset; see _choice)."""
    return _choice(DENSE_BLOCK, DENSE_BLOCK_CHOICES, "dense-block")


def parsing():
    """Whether an entry point is still parsing its arguments (see the module docstring)."""
    return os.environ.get(PARSING) == "1"


def register_everything():
    """Imports every keras-sr module that registers a serializable class (and TensorFlow)."""
    import keras_sr
    from keras_sr import (  # noqa: F401
        convert,
        inference,
        layers,
        litert,
        losses,
        metrics,
        models,
        precision,
        presets,
        trainers,
    )
    from keras_sr.losses import adversarial, perceptual
    from keras_sr.trainers import schedules

    keras_sr.adversarial, keras_sr.perceptual = adversarial, perceptual
    keras_sr.schedules = schedules


def workload_switches(workload, environ=None, flags=None):
    """`{variable: (value, why)}`: the switches `workload` ("train", or None) runs faster with
    on this machine (see the module docstring; `flags`: the CPU's, read when None), less any
    the user set."""
    from keras_sr.precision import ONEDNN_VARIABLE, cpu_flags, onednn_enabled, x86_linux

    switches = {}
    if workload != "train":
        return switches
    environ = os.environ if environ is None else environ
    flags = cpu_flags() if flags is None else flags
    onednn = onednn_enabled(flags=flags, environ=environ)
    if not onednn:
        if ONEDNN_VARIABLE not in environ and x86_linux():
            switches[ONEDNN_VARIABLE] = (
                "1", "oneDNN's kernels, which TensorFlow leaves off on this CPU: its "
                     "convolutions train about 1.2x faster than Eigen's here")
            onednn = True
        else:
            if ALLOCATOR not in environ:
                switches[ALLOCATOR] = (
                    "true", "TensorFlow's BFC arena: Eigen's kernels, which run here, train "
                            "about 1.9x faster with it than with malloc")
            if DENSE_BLOCK not in environ and x86_linux():
                switches[DENSE_BLOCK] = (
                    DENSE_BLOCK_CHOICES[1],
                    "dense blocks as split sums: Eigen's backward pass over concatenated "
                    "inputs is slow, RRDBNet's forward and backward take ~0.75x the time")
    if onednn and x86_linux() and "avx512f" not in flags and WEIGHT_GRADIENT not in environ:
        switches[WEIGHT_GRADIENT] = (
            WEIGHT_GRADIENT_CHOICES[1],
            "3x3 convolutions' weight gradients as matrix products: oneDNN's AVX2 kernel for "
            "them is slower, RRDBNet's forward and backward take ~0.83x the time with them")
    return switches


def load(workload=None, tensorflow=True):
    """For entry points, once their arguments are parsed: the switches `workload` ("train", or
    None) runs faster with set, TensorFlow imported quietly (unless verbose: keras_sr._quiet)
    and everything registered. Does nothing the second time. `tensorflow=False`: the command
    mode alone (parsing over, TensorFlow's and LiteRT's chatter hidden), for a run that may
    need no TensorFlow at all; a later `load()` starts it."""
    from keras_sr import _quiet

    os.environ.pop(PARSING, None)
    try:
        # Said before any work starts (the layers would say it only when a step is traced).
        weight_gradient_choice()
        dense_block_choice()
    except ValueError as error:
        raise SystemExit(str(error)) from None
    _quiet.in_command = True
    _quiet.show_command_warnings()
    from keras_sr.precision import warn_of_ignored_onednn_setting

    warn_of_ignored_onednn_setting()
    if not tensorflow:
        return
    if "tensorflow" not in sys.modules:  # a switch read at TensorFlow's start
        for variable, (value, why) in workload_switches(workload).items():
            os.environ[variable] = value
            SWITCHES[variable] = (value, why)
    _quiet.import_tensorflow_quietly()
    register_everything()
