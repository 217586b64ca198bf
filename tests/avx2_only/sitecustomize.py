"""Runs keras-sr as it runs on an AVX2-only CPU, on a machine with AVX-512 (see README,
"Tests"): Python reads /proc/cpuinfo without the AVX-512, AMX and AVX-VNNI flags, so keras_sr
chooses what it chooses on such a CPU (float32; training.fit's oneDNN with matrix-product
weight gradients). Put this folder on PYTHONPATH, beside ONEDNN_MAX_CPU_ISA=AVX2 for oneDNN's
kernels. TensorFlow's own default (oneDNN on or off) still follows the real CPU.
"""

import builtins
import io
import re

_open = builtins.open
_DROPPED = ("avx512", "amx", "avx_vnni", "avx_ifma", "avx_ne_convert")


def _without_newer_flags(match):
    kept = [flag for flag in match.group(2).split() if not flag.startswith(_DROPPED)]
    return match.group(1) + " ".join(kept)


def _open_as_avx2_only(file, *args, **kwargs):
    if file != "/proc/cpuinfo":
        return _open(file, *args, **kwargs)
    with _open(file) as cpuinfo:
        text = re.sub(r"^(flags\s*:\s*)(.*)$", _without_newer_flags, cpuinfo.read(), flags=re.M)
    mode = args[0] if args else kwargs.get("mode", "r")
    return io.BytesIO(text.encode()) if "b" in mode else io.StringIO(text)


builtins.open = _open_as_avx2_only
