"""Pretrained weights in and out: PyTorch (.pth, in the original ESRGAN, xinntao/ESRGAN and
BasicSR / Real-ESRGAN layouts), .safetensors, and ncnn (.param + .bin), to Keras networks and
back to BasicSR's layout."""

import os

from keras_sr.convert import basicsr, ncnn, safetensors
from keras_sr.convert import torch as torch_format
from keras_sr.convert.errors import ConversionError, UnsafeCheckpointError

__all__ = ["ConversionError", "UnsafeCheckpointError", "convert", "export", "read_state_dict"]

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".pkl")


def _suffix(path):
    return os.path.splitext(path)[1].lower()


def read_state_dict(*sources):
    """`(layout, state_dict)`: the weights of one model in BasicSR's layout. `sources` is one
    `.pth` / `.safetensors` file, or an ncnn `.param` (with its `.bin` beside it or given)."""
    sources = [os.fspath(source) for source in sources]
    params = [s for s in sources if _suffix(s) == ".param"]
    if params:
        bins = [s for s in sources if _suffix(s) == ".bin"]
        if len(params) != 1 or len(bins) > 1 or len(sources) != len(params) + len(bins):
            raise ConversionError(f"an ncnn model is one .param and one .bin, got {sources}")
        _, state_dict = ncnn.read_state_dict(params[0], bins[0] if bins else None)
        return "ncnn", state_dict
    if len(sources) != 1:
        raise ConversionError(f"give one checkpoint (or an ncnn .param and .bin), got {sources}")
    (source,) = sources
    if not os.path.isfile(source):
        raise ConversionError(f"no such file: {source}")
    if _suffix(source) == ".safetensors":
        checkpoint = safetensors.load(source)
    elif _suffix(source) in TORCH_SUFFIXES:
        checkpoint = torch_format.load(source)
    else:
        raise ConversionError(f"{source}: unknown weights format (expected "
                              f"{', '.join(TORCH_SUFFIXES)}, .safetensors or ncnn .param/.bin)")
    return basicsr.to_basicsr_layout(basicsr.unwrap(checkpoint, source), source)


def convert(*sources, name=None):
    """The Keras RRDBNet or SRVGGNetCompact holding the weights in `sources` (see
    `read_state_dict`); architecture, blocks, features and scale come from the weight shapes.

    Example:
    >>> model = keras_sr.convert.convert("RealESRGAN_x4plus.pth")
    >>> model.save("realesrgan_x4plus.keras")
    """
    _, state_dict = read_state_dict(*sources)
    return basicsr.build_model(state_dict, source=", ".join(map(str, sources)), name=name)


def export(model, path, overwrite=False):
    """Writes `model`'s weights in BasicSR's layout to `.pth` (as `{"params": state_dict}`,
    which BasicSR and Real-ESRGAN load) or `.safetensors`."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    state_dict = basicsr.state_dict_of(model)
    if _suffix(path) == ".safetensors":
        safetensors.save(path, state_dict, {"format": "pt", "architecture": type(model).__name__})
    elif _suffix(path) in TORCH_SUFFIXES:
        torch_format.save(path, state_dict)
    else:
        raise ConversionError(f"{path}: write .pth or .safetensors")
