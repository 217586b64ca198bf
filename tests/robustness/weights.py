"""Weights files for the reader fuzz test: valid small ones of each format, written here, and
seeded mutations of them (byte flips, truncations, header edits, and offset / stride / shape /
count edits inside the pickle)."""

import io
import json
import pickle
import struct
import zipfile

import numpy as np

from keras_sr.convert import safetensors
from keras_sr.convert import torch as torch_format
from tests.convert.ncnn_files import write_srvgg

SHAPES = {"conv_first.weight": (4, 3, 3, 3), "conv_first.bias": (4,), "scale": ()}


def small_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.1, shape).astype(np.float32) for name, shape in
            SHAPES.items()}


def torch_zip(entries, storages, wrapper="params", compress=False):
    """A PyTorch zip checkpoint of `_pickle_tensors` `entries` over `storages` (key ->
    float32 array); `compress` deflates the members, as no torch.save does."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("archive/data.pkl", torch_format._pickle_tensors(entries, wrapper))
        archive.writestr("archive/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"archive/data/{key}", np.asarray(array, "<f4").tobytes())
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def torch_legacy(entries, storages, wrapper="params", counts=None):
    """A pre-1.6 PyTorch checkpoint (as ESRGAN's 2018 files): magic, version and system
    pickles, the object pickle, the storage keys, then each storage as its element count and
    raw data; `counts` overrides the written element counts."""
    out = io.BytesIO()
    for header in (torch_format.LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(torch_format._pickle_tensors(entries, wrapper, legacy=True))
    pickle.dump([str(key) for key in storages], out, protocol=2)
    for key, array in storages.items():
        key, array = str(key), np.asarray(array, "<f4").reshape(-1)
        count = array.size if counts is None else counts.get(key, array.size)
        out.write(struct.pack("<q", count) + array.tobytes())
    return out.getvalue()


def valid_torch(legacy=False):
    arrays = small_state_dict()
    entries = torch_format.contiguous_tensors(arrays)
    storages = {index: array for index, array in enumerate(arrays.values())}
    return (torch_legacy if legacy else torch_zip)(entries, storages)


def hostile_torch(rng, legacy):
    """A checkpoint whose one tensor has an offset, size or stride chosen to read outside its
    16-element storage, or far more than it, or a storage count that lies."""
    storage = np.arange(16, dtype=np.float32)
    offset, shape, strides = 0, (4, 4), (4, 1)
    choice = rng.integers(0, 8)
    big = int(rng.choice([2**31, 2**40, 2**62]))
    if choice == 0:
        offset = -int(rng.integers(1, 2**40))
    elif choice == 1:
        strides = (int(-rng.integers(1, 2**20)), 1)
    elif choice == 2:
        offset = int(rng.integers(16, 2**40))
    elif choice == 3:
        shape, strides = (big, big), (0, 0)  # a broadcast view of huge size
    elif choice == 4:
        shape = (int(rng.integers(5, 2**20)), 4)
    elif choice == 5:
        shape, strides = (4, 4, 4), (4, 1)  # rank of size and stride differ
    elif choice == 6:
        shape, strides = (4, -4), (4, 1)
    else:
        strides = (big, 1)
    entries = [("weight", 0, storage.size, offset, shape, strides)]
    if legacy:
        counts = {"0": int(rng.choice([-1, 2**40, 2**62, 17]))} if rng.random() < 0.3 else None
        return torch_legacy(entries, {0: storage}, counts=counts)
    return torch_zip(entries, {0: storage})


def repeated_storage_torch(copies=2000):
    """Many tensors over one storage: each costs a few bytes of pickle and a full copy."""
    storage = np.zeros(65536, np.float32)
    entries = [(f"t{index}", 0, storage.size, 0, (65536,), (1,)) for index in range(copies)]
    return torch_zip(entries, {0: storage})


def zip_bomb_torch():
    """A deflated storage of 256 MB of zeros in a file of about 250 KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = [("weight", 0, 2**26, 0, (2**26,), (1,))]
        archive.writestr("archive/data.pkl", torch_format._pickle_tensors(entries, "params"))
        archive.writestr("archive/data/0", bytes(2**28))
    return buffer.getvalue()


def valid_safetensors(tmp_path):
    path = tmp_path / "valid.safetensors"
    safetensors.save(str(path), small_state_dict())
    return path.read_bytes()


def hostile_safetensors(rng, valid):
    """Header edits: offsets, shapes, dtypes and sizes that disagree with the data."""
    (size,) = struct.unpack("<Q", valid[:8])
    header = json.loads(valid[8:8 + size])
    body = valid[8 + size:]
    name = str(rng.choice(sorted(k for k in header if k != "__metadata__")))
    entry = header[name]
    choice = rng.integers(0, 9)
    if choice == 0:
        entry["data_offsets"] = [-16, entry["data_offsets"][1]]
    elif choice == 1:
        entry["data_offsets"] = [entry["data_offsets"][1], entry["data_offsets"][0]]
    elif choice == 2:
        entry["data_offsets"] = [0, len(body) + int(rng.integers(1, 2**40))]
    elif choice == 3:
        entry["shape"] = [2**31, 2**31, 2**31]  # overflows int64 in numpy's prod
    elif choice == 4:
        entry["shape"] = [-1, 4]
    elif choice == 5:
        entry["dtype"] = str(rng.choice(["F8", "C64", "", "object"]))
    elif choice == 6:
        entry["shape"] = "big"
    elif choice == 7:
        encoded = b"[" * 100000 + b"]" * 100000  # deeper than json's recursion limit
        return struct.pack("<Q", len(encoded)) + encoded + body
    else:
        return struct.pack("<Q", int(rng.choice([2**63, len(valid), 2**40]))) + valid[8:]
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + body


def valid_ncnn(tmp_path):
    """A 2-conv SRVGGNetCompact in ncnn's text format, as (param text, bin bytes)."""
    rng = np.random.default_rng(0)
    state_dict = {}
    channels = [3, 8, 8, 8]
    for position in range(3):
        state_dict[f"body.{2 * position}.weight"] = rng.normal(
            0, 0.1, (channels[position + 1], channels[position], 3, 3)).astype(np.float32)
        state_dict[f"body.{2 * position}.bias"] = np.zeros(channels[position + 1], np.float32)
        state_dict[f"body.{2 * position + 1}.weight"] = np.full(channels[position + 1], 0.25,
                                                                np.float32)
    state_dict["body.6.weight"] = rng.normal(0, 0.1, (48, 8, 3, 3)).astype(np.float32)
    state_dict["body.6.bias"] = np.zeros(48, np.float32)
    param, weights = write_srvgg(str(tmp_path / "valid"), state_dict, 2, 4)
    with open(param) as file:
        text = file.read()
    with open(weights, "rb") as file:
        return text, file.read()


def hostile_param(rng, text):
    """One number of one layer line replaced by a negative, huge, zero or non-integer one."""
    lines = text.splitlines()
    index = int(rng.integers(2, len(lines)))
    fields = lines[index].split()
    numbered = [i for i, field in enumerate(fields) if "=" in field]
    if not numbered:
        return text
    position = int(rng.choice(numbered))
    key = fields[position].split("=", 1)[0]
    fields[position] = f"{key}=" + str(rng.choice(["-8", "0", "99999999999", "1.5", "nan",
                                                   "-23300", "1,2,3", ""]))
    lines[index] = " ".join(fields)
    return "\n".join(lines) + "\n"


def mutate_bytes(rng, data):
    """Byte flips, a truncation, an insertion or a deletion at seeded places."""
    data = bytearray(data)
    kind = rng.integers(0, 4)
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
        del data[int(rng.integers(0, len(data))):]
    elif kind == 2:
        at = int(rng.integers(0, len(data)))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes()
    else:
        at = int(rng.integers(0, len(data)))
        del data[at:at + int(rng.integers(1, 64))]
    return bytes(data)
