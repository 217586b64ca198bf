"""PyTorch checkpoints (`.pth`) read and written without running code from them.

A `.pth` file is a pickle, and unpickling can call any function, so a downloaded checkpoint must
never go through plain `pickle.load`. With PyTorch installed, `torch.load(weights_only=True)`
reads it; without, a restricted unpickler that knows only the tensor-rebuild functions and the
storage types reads both the zip format (PyTorch >= 1.6) and the legacy one (ESRGAN's 2018
files). Anything else in the pickle is refused with UnsafeCheckpointError before it runs.
"""

import collections
import io
import math
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


# A deflated zip member may expand this many times at most: weights barely compress, a zip
# bomb expands by thousands.
MAX_EXPANSION = 64
# Tensors may together hold this much more than their storages (views that overlap, such as
# an expanded bias, are legal in PyTorch but rare in checkpoints).
MATERIALIZE_SLACK = 1 << 20


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage's data (None until read, in the legacy format) and its element type."""

    def __init__(self, key, storage_type, data=None):
        self.key, self.type, self.data = key, storage_type, data


def _as_float(array, storage_name):
    if storage_name == "BFloat16Storage":  # numpy has no bfloat16: widen the bits
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _Tensors:
    """Makes arrays of storages, refusing any offset, size or stride that would read outside
    its storage, and keeping the copies made within the bytes the storages hold."""

    def __init__(self, source):
        self.source = source
        self.storage_bytes = 0
        self.materialized_bytes = 0

    def add_storage(self, data):
        self.storage_bytes += data.nbytes

    def rebuild(self, storage, storage_offset, size, stride, *unused):
        if not isinstance(storage, _Storage) or storage.data is None:
            raise ConversionError(f"{self.source}: a tensor refers to a storage that is not "
                                  "in the file")
        where = f"{self.source}: a tensor in storage {storage.key}"
        if not _integer(storage_offset) or not isinstance(size, tuple) or \
                not isinstance(stride, tuple) or len(size) != len(stride) or \
                not all(map(_integer, size + stride)):
            raise ConversionError(f"{where} has a malformed offset, size or stride")
        if storage_offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
            raise ConversionError(f"{where} has a negative offset, size or stride "
                                  f"(offset {storage_offset}, size {size}, stride {stride})")
        array = storage.data
        count = math.prod(size)
        if count:
            last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= array.size:
                raise ConversionError(f"{where} of size {size} at offset {storage_offset} "
                                      f"(strides {stride}) overruns its {array.size} elements")
        elif storage_offset > array.size:
            raise ConversionError(f"{where} starts at {storage_offset}, past its "
                                  f"{array.size} elements")
        self.materialized_bytes += count * array.itemsize
        if self.materialized_bytes > self.storage_bytes + MATERIALIZE_SLACK:
            raise ConversionError(f"{self.source}: its tensors would hold "
                                  f"{self.materialized_bytes:,} bytes, more than the "
                                  f"{self.storage_bytes:,} their storages hold (tensors "
                                  "overlapping or repeated; a weights file has neither)")
        if not size:
            return _as_float(array[storage_offset:storage_offset + 1].reshape(()).copy(),
                             storage.type.name)
        itemsize = array.itemsize
        view = np.lib.stride_tricks.as_strided(
            array[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride))
        return _as_float(np.array(view), storage.type.name)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


def _rebuild_tensor(*unused):
    raise AssertionError("replaced by _Tensors.rebuild in every unpickler")


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
            if found is _rebuild_tensor:
                if self.rebuild is None:
                    raise ConversionError(f"{self.source}: a tensor where none belongs")
                return self.rebuild
            return found
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"{self.source}: the pickle asks for {module}.{name}, which is not a tensor; it was "
            "refused without running (a checkpoint should hold only tensors)")

    def persistent_load(self, pid):
        if self.load_storage is None or not isinstance(pid, tuple) or len(pid) < 3 \
                or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise UnsafeCheckpointError(f"{self.source}: unexpected persistent id {pid!r:.200}")
        return self.load_storage(pid)


def _load_zip(path):
    tensors = _Tensors(path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in members if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(pickles) != 1:
            raise ConversionError(f"{path}: a PyTorch zip checkpoint has one data.pkl, this "
                                  f"has {len(pickles)}")

        def read(name):
            info = members[name]
            if info.compress_type != zipfile.ZIP_STORED and \
                    info.file_size > MAX_EXPANSION * max(info.compress_size, 1024):
                raise ConversionError(f"{path}: member {name} would expand from "
                                      f"{info.compress_size:,} to {info.file_size:,} bytes")
            return archive.read(info)

        root = pickles[0][:-len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in members and read(byteorder).strip() != b"little":
            raise ConversionError(f"{path}: big-endian checkpoints are not supported")
        storages = {}

        def load_storage(pid):
            storage_type, key = pid[1], str(pid[2])
            if key not in storages:
                name = f"{root}data/{key}"
                if name not in members:
                    raise ConversionError(f"{path}: storage {key} is missing")
                data = read(name)
                array = np.frombuffer(data, storage_type.dtype,
                                      len(data) // storage_type.dtype.itemsize)
                tensors.add_storage(array)
                storages[key] = _Storage(key, storage_type, array)
            elif storages[key].type.name != storage_type.name:
                raise ConversionError(f"{path}: storage {key} is used as two types")
            return storages[key]

        return _RestrictedUnpickler(io.BytesIO(read(pickles[0])), path, load_storage,
                                    tensors.rebuild).load()


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
        key = str(pid[2])
        storage = storages.setdefault(key, _Storage(key, pid[1]))
        if storage.type.name != pid[1].name:
            raise ConversionError(f"{path}: storage {key} is used as two types")
        return storage

    deferred = []

    def rebuild(storage, *args):
        deferred.append((storage, args))
        return _Deferred(len(deferred) - 1)

    obj = _RestrictedUnpickler(file, path, load_storage, rebuild).load()
    keys = header()
    if not isinstance(keys, list):
        raise ConversionError(f"{path}: the storage list is not a list")
    file_size = file.getbuffer().nbytes
    tensors = _Tensors(path)
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise ConversionError(f"{path}: storage {key} is not used by any tensor")
        if storage.data is not None:
            raise ConversionError(f"{path}: storage {key} is stored twice")
        (count,) = struct.unpack("<q", file.read(8))
        size = count * storage.type.dtype.itemsize
        if not 0 <= size <= file_size - file.tell():
            raise ConversionError(f"{path}: storage {key} claims {count:,} elements, more "
                                  "than the file holds")
        storage.data = np.frombuffer(file.read(size), storage.type.dtype)
        tensors.add_storage(storage.data)
    return _resolve(obj, [tensors.rebuild(storage, *args) for storage, args in deferred])


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


def _to_numpy(obj, source, budget=None):
    """torch tensors to numpy arrays, held to the same rule as the reader without torch: the
    tensors may not hold more than their storages (a crafted stride-0 view of 2**40 elements
    loads in torch as a view, and would be materialized later)."""
    import torch

    budget = budget if budget is not None else {"storages": {}, "tensors": 0}
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        budget["storages"][storage.data_ptr()] = storage.nbytes()
        budget["tensors"] += obj.numel() * obj.element_size()
        if budget["tensors"] > sum(budget["storages"].values()) + MATERIALIZE_SLACK:
            raise ConversionError(f"{source}: its tensors would hold {budget['tensors']:,} "
                                  "bytes, more than their storages (tensors overlapping or "
                                  "repeated; a weights file has neither)")
        tensor = obj.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(obj, dict):
        return type(obj)((key, _to_numpy(value, source, budget)) for key, value in obj.items())
    return obj


def load(path, use_torch=None):
    """The checkpoint at `path` with tensors as numpy arrays, never running code from it.
    `use_torch`: None picks torch.load(weights_only=True) when PyTorch is installed.

    Raises:
        UnsafeCheckpointError: the pickle asks for anything but tensors and containers.
        ConversionError: anything else wrong with the file (missing, truncated, corrupt, or a
            tensor that would read outside its storage), naming the file.
    """
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
            source = path
            if not zipfile.is_zipfile(path):
                # A legacy file is read from memory, as without torch: from a file object,
                # a corrupt pickle length makes the unpickler allocate whatever it says.
                with open(path, "rb") as file:
                    source = io.BytesIO(file.read())
            return _to_numpy(torch.load(source, map_location="cpu", weights_only=True), path)
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpointError(
                f"{path}: refused by torch.load(weights_only=True), which loads only tensors "
                f"and plain containers: {str(error).splitlines()[0]}") from None
        except (ConversionError, MemoryError):
            raise
        except Exception as error:  # noqa: BLE001
            # torch.load raises RuntimeError for most damage, and whatever its zip reader or
            # unpickler meets for the rest (UnicodeDecodeError, IndexError, struct.error...).
            raise ConversionError(f"{path} is not a readable PyTorch checkpoint: "
                                  f"{type(error).__name__}: "
                                  f"{(str(error).splitlines() or [''])[0][:200]}") from None
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as file:
            # From memory: a pickle's length prefixes are then bounded by the data (a file
            # object would allocate whatever a corrupt prefix asks for before reading).
            return _load_legacy(path, io.BytesIO(file.read()))
    except (ConversionError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001
        # Whatever else malformed bytes make the unpickler, zipfile or numpy raise (truncated
        # data, bad opcodes, wrong types, nesting too deep), the file is not a checkpoint.
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint: "
                              f"{type(error).__name__}: {str(error)[:200]}") from None


# --- Writing: the zip format of torch.save, so torch.load(weights_only=True) reads it. ---

def _pickle_tensors(tensors, wrapper, legacy=False):
    """The object pickle of a state dict, as torch.save writes it. `tensors` is a list of
    `(name, storage_key, storage_elements, offset, shape, strides)` of float32 tensors;
    `legacy` writes the persistent ids of the pre-1.6 format. (Tests write odd offsets and
    strides through this too.)"""
    out = io.BytesIO()
    out.write(b"\x80\x02")  # PROTO 2

    def global_(module, name):
        out.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def string(text):
        data = text.encode("utf-8")
        out.write(b"X" + struct.pack("<I", len(data)) + data)

    def integer(value):
        out.write(b"\x8a" + bytes([8]) + struct.pack("<q", value))  # LONG1, 8 bytes

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
    for name, storage_key, storage_elements, offset, shape, strides in tensors:
        string(name)
        global_("torch._utils", "_rebuild_tensor_v2")
        out.write(b"((")
        string("storage")
        global_("torch", "FloatStorage")
        string(str(storage_key))
        string("cpu")
        integer(storage_elements)
        if legacy:
            out.write(b"N")  # view metadata
        out.write(b"tQ")  # TUPLE, BINPERSID
        integer(offset)
        int_tuple(shape)
        int_tuple(strides)
        out.write(b"\x89")  # NEWFALSE: requires_grad
        ordered_dict()  # backward hooks
        out.write(b"tR")
    out.write(b"u")  # SETITEMS
    if wrapper:
        out.write(b"s")  # SETITEM
    out.write(b".")
    return out.getvalue()


def contiguous_tensors(arrays):
    """`_pickle_tensors` entries for contiguous float32 arrays, each in its own storage."""
    return [(name, index, array.size, 0, array.shape,
             tuple(s // array.itemsize for s in array.strides))
            for index, (name, array) in enumerate(arrays.items())]


def save(path, state_dict, wrapper="params"):
    """Writes `{wrapper: state_dict}` (BasicSR's checkpoint shape; `wrapper=None` for a bare
    state dict) as float32 in PyTorch's zip format, atomically."""
    arrays = {key: np.ascontiguousarray(value, np.float32) for key, value in state_dict.items()}
    root = os.path.splitext(os.path.basename(path))[0] or "archive"
    with atomic_path(path) as temporary, \
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{root}/data.pkl",
                         _pickle_tensors(contiguous_tensors(arrays), wrapper))
        archive.writestr(f"{root}/byteorder", "little")
        for index, array in enumerate(arrays.values()):
            archive.writestr(f"{root}/data/{index}", array.tobytes())
        archive.writestr(f"{root}/version", "3\n")
