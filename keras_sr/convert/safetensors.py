"""`.safetensors` files (a JSON header and raw little-endian tensors: nothing to execute) read and
written with numpy alone.

Why not the `safetensors` package (which the tests use as the reference for what this writes):
its numpy loader cannot read bfloat16 tensors ("data type 'bfloat16' not understood", safetensors
0.8), and checkpoints shared today are often bfloat16; this reader widens them to float32. It
checks every offset, shape and dtype against the file before making an array, and is fuzzed
(`tests/robustness/test_weight_readers.py`).
"""

import json
import math
import struct

import numpy as np

from keras_sr.atomic import atomic_path
from keras_sr.convert.errors import ConversionError

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
MAX_HEADER = 100 * 1024 * 1024


def _entry(name, entry, body_size):
    """`(numpy dtype, shape, begin, end)` of a header entry, every field checked against the
    data that follows the header."""
    if not isinstance(entry, dict):
        raise ValueError(f"tensor {name}: not a header entry")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise ValueError(f"tensor {name} has unsupported dtype {dtype!r:.40}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(
            n, bool) and n >= 0 for n in shape):
        raise ValueError(f"tensor {name}: shape {shape!r:.80} is not a list of sizes")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in offsets):
        raise ValueError(f"tensor {name}: data_offsets {offsets!r:.80} are not two integers")
    begin, end = offsets
    if not 0 <= begin <= end <= body_size:
        raise ValueError(f"tensor {name}: data_offsets [{begin}, {end}] are outside the "
                         f"{body_size} bytes of data")
    dtype = np.dtype(DTYPES[dtype])
    if math.prod(shape) * dtype.itemsize != end - begin:
        raise ValueError(f"tensor {name}: {end - begin} bytes for shape {tuple(shape)} of "
                         f"{entry['dtype']}")
    return dtype, tuple(shape), begin, end


def load(path):
    """{name: float or integer numpy array} of a `.safetensors` file (bf16 widened to f32).

    Raises:
        ConversionError: the file is missing or malformed (every offset, shape and size is
            checked against the file before any tensor is made), naming it and the tensor.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ConversionError(f"cannot read {path}: {error}") from None
    try:
        if len(data) < 8:
            raise ValueError(f"{len(data)} bytes cannot hold a header")
        (header_size,) = struct.unpack("<Q", data[:8])
        if header_size > min(MAX_HEADER, len(data) - 8):
            raise ValueError(f"header of {header_size} bytes in a {len(data)}-byte file")
        header = json.loads(data[8:8 + header_size])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        body = memoryview(data)[8 + header_size:]
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype, shape, begin, end = _entry(name, entry, len(body))
            array = np.frombuffer(body[begin:end], dtype)
            if entry["dtype"] == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = array.reshape(shape).copy()
        return tensors
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001
        # Malformed JSON (too deeply nested included) or a malformed entry.
        raise ConversionError(f"{path} is not a valid .safetensors file: "
                              f"{str(error)[:300]}") from None


def save(path, tensors, metadata=None):
    """Writes float32 tensors atomically."""
    arrays = {name: np.ascontiguousarray(value, np.float32) for name, value in tensors.items()}
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, array in arrays.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)) + encoded)
        for array in arrays.values():
            file.write(array.tobytes())
