"""`.safetensors` files (a JSON header and raw little-endian tensors: nothing to execute) read and
written with numpy alone."""

import json
import struct

import numpy as np

from keras_sr.atomic import atomic_path
from keras_sr.convert.errors import ConversionError

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
MAX_HEADER = 100 * 1024 * 1024


def load(path):
    """{name: float or integer numpy array} of a `.safetensors` file (bf16 widened to f32)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ConversionError(f"cannot read {path}: {error}") from None
    try:
        (header_size,) = struct.unpack("<Q", data[:8])
        if header_size > min(MAX_HEADER, len(data) - 8):
            raise ValueError(f"header of {header_size} bytes in a {len(data)}-byte file")
        header = json.loads(data[8:8 + header_size])
        body = memoryview(data)[8 + header_size:]
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype = entry["dtype"]
            if dtype not in DTYPES:
                raise ValueError(f"tensor {name} has unsupported dtype {dtype}")
            begin, end = entry["data_offsets"]
            shape = tuple(entry["shape"])
            array = np.frombuffer(body[begin:end], DTYPES[dtype])
            if array.size != int(np.prod(shape)):
                raise ValueError(f"tensor {name}: {array.size} values for shape {shape}")
            if dtype == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = array.reshape(shape).copy()
        return tensors
    except (struct.error, ValueError, KeyError, TypeError) as error:
        raise ConversionError(f"{path} is not a valid .safetensors file: {error}") from None


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
