"""PyTorch checkpoints (`.pth`) read and written without running code from them.

A `.pth` file is a pickle, and unpickling can call any function, so a downloaded checkpoint must
never go through plain `pickle.load`. With PyTorch installed, `torch.load(weights_only=True)`
reads it; without, a restricted unpickler that knows only the tensor-rebuild functions and the
storage types reads both the zip format (PyTorch >= 1.6) and the legacy one (ESRGAN's 2018
files). Anything else in the pickle is refused with UnsafeCheckpointError before it runs.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from keras_sr.atomic import atomic_path
from keras_sr.convert.errors import ConversionError, UnsafeCheckpointError

STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "HalfStorage": np.dtype("<f2"),
    "DoubleStorage": np.dtype("<f8"), "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _as_float(array, storage_name):
    if storage_name == "BFloat16Storage":  # numpy has no bfloat16: widen the bits
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    array, storage_name = storage
    itemsize = array.dtype.itemsize
    if not size:
        return _as_float(array[storage_offset:storage_offset + 1].reshape(()).copy(),
                         storage_name)
    needed = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if needed > array.size:
        raise ConversionError(f"a tensor of size {tuple(size)} overruns its storage")
    view = np.lib.stride_tricks.as_strided(
        array[storage_offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return _as_float(np.array(view), storage_name)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only dicts, tensors and storages; `rebuild` makes tensors of storages."""

    def __init__(self, file, source, load_storage, rebuild=None):
        super().__init__(file)
        self.source = source
        self.load_storage = load_storage
        self.rebuild = rebuild

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            found = ALLOWED[(module, name)]
            return self.rebuild if self.rebuild and found is _rebuild_tensor else found
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"{self.source}: the pickle asks for {module}.{name}, which is not a tensor; it was "
            "refused without running (a checkpoint should hold only tensors)")

    def persistent_load(self, pid):
        if self.load_storage is None or not isinstance(pid, tuple) or not pid \
                or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise UnsafeCheckpointError(f"{self.source}: unexpected persistent id {pid!r}")
        return self.load_storage(pid)


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(pickles) != 1:
            raise ConversionError(f"{path}: a PyTorch zip checkpoint has one data.pkl, this "
                                  f"has {len(pickles)}")
        root = pickles[0][:-len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise ConversionError(f"{path}: big-endian checkpoints are not supported")
        storages = {}

        def load_storage(pid):
            storage_type, key = pid[1], str(pid[2])
            if key not in storages:
                try:
                    data = archive.read(f"{root}data/{key}")
                except KeyError:
                    raise ConversionError(f"{path}: storage {key} is missing") from None
                size = len(data) // storage_type.dtype.itemsize
                storages[key] = np.frombuffer(data, storage_type.dtype, size)
            return storages[key], storage_type.name

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path,
                                    load_storage).load()


def _load_legacy(path, file):
    def header():
        return _RestrictedUnpickler(file, path, None).load()

    if header() != LEGACY_MAGIC:
        raise ConversionError(f"{path} is neither a PyTorch zip checkpoint nor a legacy one")
    header()  # protocol version
    header()  # sys_info
    # The storages follow the object pickle: tensors are rebuilt once they have been read.
    storages = {}

    def load_storage(pid):
        return storages.setdefault(str(pid[2]), [None, pid[1]])

    deferred = []

    def rebuild(storage, *args):
        deferred.append((storage, args))
        return _Deferred(len(deferred) - 1)

    obj = _RestrictedUnpickler(file, path, load_storage, rebuild).load()
    for key in header():
        holder = storages.get(str(key))
        if holder is None:
            raise ConversionError(f"{path}: storage {key} is not used by any tensor")
        (count,) = struct.unpack("<q", file.read(8))
        size = count * holder[1].dtype.itemsize
        data = file.read(size)
        if len(data) != size:
            raise ConversionError(f"{path} ends inside storage {key}")
        holder[0] = np.frombuffer(data, holder[1].dtype)
    tensors = [_rebuild_tensor((holder[0], holder[1].name), *args)
               for holder, args in deferred]
    return _resolve(obj, tensors)


class _Deferred:
    def __init__(self, index):
        self.index = index


def _resolve(obj, tensors):
    if isinstance(obj, _Deferred):
        return tensors[obj.index]
    if isinstance(obj, dict):
        return type(obj)((key, _resolve(value, tensors)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value, tensors) for value in obj)
    return obj


def _to_numpy(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(obj, dict):
        return type(obj)((key, _to_numpy(value)) for key, value in obj.items())
    return obj


def load(path, use_torch=None):
    """The checkpoint at `path` with tensors as numpy arrays, never running code from it.
    `use_torch`: None picks torch.load(weights_only=True) when PyTorch is installed."""
    if not os.path.isfile(path):
        raise ConversionError(f"no such checkpoint: {path}")
    if use_torch is None:
        try:
            import torch  # noqa: F401
            use_torch = True
        except ImportError:
            use_torch = False
    if use_torch:
        import torch

        try:
            return _to_numpy(torch.load(path, map_location="cpu", weights_only=True))
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpointError(
                f"{path}: refused by torch.load(weights_only=True), which loads only tensors "
                f"and plain containers: {str(error).splitlines()[0]}") from None
        except (RuntimeError, EOFError, OSError) as error:
            raise ConversionError(f"{path} is not a readable PyTorch checkpoint: "
                                  f"{str(error).splitlines()[0]}") from None
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as file:
            return _load_legacy(path, file)
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, struct.error,
            zipfile.BadZipFile, IndexError, TypeError) as error:
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint: {error}") from None


# --- Writing: the zip format of torch.save, so torch.load(weights_only=True) reads it. ---

def _pickle_state_dict(state_dict, wrapper):
    out = io.BytesIO()
    out.write(b"\x80\x02")  # PROTO 2

    def global_(module, name):
        out.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def string(text):
        data = text.encode("utf-8")
        out.write(b"X" + struct.pack("<I", len(data)) + data)

    def integer(value):
        out.write(b"J" + struct.pack("<i", value))

    def int_tuple(values):
        out.write(b"(")
        for value in values:
            integer(value)
        out.write(b"t")

    def ordered_dict():
        global_("collections", "OrderedDict")
        out.write(b")R")

    if wrapper:
        out.write(b"}")  # EMPTY_DICT
        string(wrapper)
    ordered_dict()
    out.write(b"(")  # MARK for SETITEMS
    for index, (key, array) in enumerate(state_dict.items()):
        string(key)
        global_("torch._utils", "_rebuild_tensor_v2")
        out.write(b"((")
        string("storage")
        global_("torch", "FloatStorage")
        string(str(index))
        string("cpu")
        integer(array.size)
        out.write(b"tQ")  # TUPLE, BINPERSID
        integer(0)
        int_tuple(array.shape)
        int_tuple([s // array.itemsize for s in array.strides])
        out.write(b"\x89")  # NEWFALSE: requires_grad
        ordered_dict()  # backward hooks
        out.write(b"tR")
    out.write(b"u")  # SETITEMS
    if wrapper:
        out.write(b"s")  # SETITEM
    out.write(b".")
    return out.getvalue()


def save(path, state_dict, wrapper="params"):
    """Writes `{wrapper: state_dict}` (BasicSR's checkpoint shape; `wrapper=None` for a bare
    state dict) as float32 in PyTorch's zip format, atomically."""
    arrays = {key: np.ascontiguousarray(value, np.float32) for key, value in state_dict.items()}
    root = os.path.splitext(os.path.basename(path))[0] or "archive"
    with atomic_path(path) as temporary, \
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{root}/data.pkl", _pickle_state_dict(arrays, wrapper))
        archive.writestr(f"{root}/byteorder", "little")
        for index, array in enumerate(arrays.values()):
            archive.writestr(f"{root}/data/{index}", array.tobytes())
        archive.writestr(f"{root}/version", "3\n")
