"""Child process of the reader fuzz test: `python -m tests.robustness.reader_runner MANIFEST
FIRST MEMORY_LIMIT_MB` reads cases FIRST.. of the JSON manifest (each `{"reader": "pth" |
"pth-torch" | "safetensors" | "ncnn", "paths": [...]}`) with MEMORY_LIMIT_MB of address space
above what its imports took, and prints one JSON line per case as it finishes: the outcome
("ok" or the exception's class) and its module."""

import json
import resource
import sys


def address_space_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(manifest, first, memory_limit_mb):
    from keras_sr.convert import ncnn, safetensors
    from keras_sr.convert import torch as torch_format

    try:
        import torch  # noqa: F401  (imported before the limit: its libraries are not a case's)
    except ImportError:
        pass
    # The budget is on top of what the imports (TensorFlow and Keras, through keras_sr) took.
    limit = address_space_bytes() + int(memory_limit_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    readers = {"pth": lambda paths: torch_format.load(paths[0], use_torch=False),
               "pth-torch": lambda paths: torch_format.load(paths[0], use_torch=True),
               "safetensors": lambda paths: safetensors.load(paths[0]),
               "ncnn": lambda paths: ncnn.read_state_dict(*paths)}
    with open(manifest) as file:
        cases = json.load(file)
    for index in range(int(first), len(cases)):
        case = cases[index]
        print(json.dumps({"index": index, "started": True}), flush=True)
        try:
            readers[case["reader"]](case["paths"])
            result = {"outcome": "ok", "module": ""}
        except BaseException as error:  # noqa: BLE001 - the test judges every kind
            result = {"outcome": type(error).__name__, "module": type(error).__module__,
                      "message": str(error)[:300]}
        print(json.dumps({"index": index, **result}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
