"""Fuzz test of the weight readers: a few hundred seeded mutations of valid small `.pth` (zip
and legacy), `.safetensors` and ncnn files, each read in a child process with a memory limit.
Every case must load or raise keras-sr's own error: never a signal, another exception type or
a MemoryError."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_sr.convert import ConversionError, UnsafeCheckpointError, safetensors
from keras_sr.convert import torch as torch_format
from tests.robustness import weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Address space each reading may add to the reader process (on top of its imports): a valid
# small file needs a few MB; a decoded bomb or a materialized 2**40-element view far more.
MEMORY_LIMIT_MB = 1024
ALLOWED = {"ok", "ConversionError", "UnsafeCheckpointError"}


def build_corpus(folder, seed=0):
    rng = np.random.default_rng(seed)
    cases = []

    def add(reader, name, data, extra=None):
        path = folder / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        paths = [str(path)]
        if extra is not None:
            extra_path = folder / (path.stem + ".bin")
            extra_path.write_bytes(extra)
            paths.append(str(extra_path))
        cases.append({"reader": reader, "paths": paths, "name": name})

    valid = {"zip": weights.valid_torch(), "legacy": weights.valid_torch(legacy=True)}
    for kind, data in valid.items():
        add("pth", f"valid_{kind}.pth", data)
        for index in range(60):
            add("pth", f"bytes_{kind}_{index}.pth", weights.mutate_bytes(rng, data))
        for index in range(30):
            add("pth", f"tensor_{kind}_{index}.pth",
                weights.hostile_torch(rng, legacy=kind == "legacy"))
    add("pth", "repeated_storage.pth", weights.repeated_storage_torch())
    add("pth", "zip_bomb.pth", weights.zip_bomb_torch())
    tensors = weights.valid_safetensors(folder)
    add("safetensors", "valid.safetensors", tensors)
    for index in range(50):
        add("safetensors", f"bytes_{index}.safetensors", weights.mutate_bytes(rng, tensors))
    for index in range(40):
        add("safetensors", f"header_{index}.safetensors",
            weights.hostile_safetensors(rng, tensors))
    param, bin_data = weights.valid_ncnn(folder)
    add("ncnn", "valid_ncnn.param", param, bin_data)
    for index in range(40):
        add("ncnn", f"param_{index}.param", weights.hostile_param(rng, param), bin_data)
    for index in range(30):
        add("ncnn", f"bin_{index}.param", param, weights.mutate_bytes(rng, bin_data))
    for index in range(10):
        add("ncnn", f"param_bytes_{index}.param",
            weights.mutate_bytes(rng, param.encode()), bin_data)
    try:
        import torch  # noqa: F401
    except ImportError:
        return cases
    # With PyTorch installed, the same files through torch.load(weights_only=True) too.
    return cases + [{**case, "reader": "pth-torch", "name": f"torch:{case['name']}"}
                    for case in cases if case["reader"] == "pth"]


def run_all(cases, folder):
    """Runs every case in child processes, restarting after a case that kills its child."""
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(cases))
    environment = {**os.environ, "PYTHONPATH": ROOT}
    results, first = {}, 0
    while first < len(cases):
        run = subprocess.run(
            [sys.executable, "-m", "tests.robustness.reader_runner", str(manifest), str(first),
             str(MEMORY_LIMIT_MB)], capture_output=True, text=True, timeout=300, cwd=ROOT,
            env=environment)
        started = first
        for line in run.stdout.splitlines():
            record = json.loads(line)
            started = record["index"]
            if "outcome" in record:
                results[record["index"]] = record
        if run.returncode != 0 and started not in results:
            results[started] = {"outcome": f"exit status {run.returncode}", "module": "",
                                "message": run.stderr[-300:]}
        elif run.returncode != 0:
            raise AssertionError(f"the runner failed outside a case:\n{run.stderr}")
        first = started + 1
    return [results[index] for index in range(len(cases))]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    cases = build_corpus(folder)
    return cases, run_all(cases, folder)


def test_every_mutation_loads_or_raises_a_keras_sr_error(fuzzed):
    cases, results = fuzzed
    assert len(cases) >= 300
    bad = [(case["name"], result) for case, result in zip(cases, results)
           if result["outcome"] not in ALLOWED
           or (result["outcome"] != "ok" and not result["module"].startswith("keras_sr"))]
    assert not bad, bad[:10]


def test_the_valid_files_load_and_the_hostile_ones_are_refused(fuzzed):
    cases, results = fuzzed
    outcomes = {case["name"]: result for case, result in zip(cases, results)}
    for name in ("valid_zip.pth", "valid_legacy.pth", "valid.safetensors", "valid_ncnn.param"):
        assert outcomes[name]["outcome"] == "ok", outcomes[name]
        if f"torch:{name}" in outcomes:
            assert outcomes[f"torch:{name}"]["outcome"] == "ok", outcomes[f"torch:{name}"]
    for name, result in outcomes.items():
        if name.removeprefix("torch:").startswith(("tensor_", "header_")) or \
                name.removeprefix("torch:") in ("repeated_storage.pth", "zip_bomb.pth"):
            assert result["outcome"] == "ConversionError", (name, result)
    # The mutations reach past the outer checks: some byte-level ones still load.
    assert sum(outcomes[n]["outcome"] == "ok" for n in outcomes if n.startswith("bytes_")) > 0


@pytest.mark.parametrize("legacy", [False, True])
def test_out_of_storage_views_are_refused_naming_file_and_storage(tmp_path, legacy):
    storage = np.arange(16, dtype=np.float32)
    write = weights.torch_legacy if legacy else weights.torch_zip
    cases = {
        "negative_offset": ([("w", 0, 16, -4, (4,), (1,))], "negative offset"),
        "negative_stride": ([("w", 0, 16, 12, (4,), (-1,))], "negative offset, size or stride"),
        "overrun": ([("w", 0, 16, 8, (4, 4), (4, 1))], "overruns its 16 elements"),
        "broadcast": ([("w", 0, 16, 0, (2**40,), (0,))], "more than the 64 their storages"),
    }
    for name, (entries, message) in cases.items():
        path = tmp_path / f"{name}.pth"
        path.write_bytes(write(entries, {0: storage}))
        with pytest.raises(ConversionError, match=message) as raised:
            torch_format.load(str(path), use_torch=False)
        assert f"{name}.pth" in str(raised.value) and "storage 0" in str(raised.value) \
            or name == "broadcast"


def test_legacy_files_written_without_torch_read_back_exactly(tmp_path):
    arrays = weights.small_state_dict()
    path = tmp_path / "legacy.pth"
    path.write_bytes(weights.valid_torch(legacy=True))
    loaded = torch_format.load(str(path), use_torch=False)["params"]
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_a_code_running_pickle_inside_a_fuzzed_file_is_still_refused(tmp_path):
    from tests.convert.test_torch import write_malicious_zip

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write_malicious_zip(str(path), marker)
    with pytest.raises(UnsafeCheckpointError):
        torch_format.load(str(path), use_torch=False)
    assert not marker.exists()


def test_safetensors_offsets_outside_the_data_are_refused(tmp_path):
    valid = weights.valid_safetensors(tmp_path)
    rng = np.random.default_rng(5)
    for index in range(20):
        path = tmp_path / f"hostile_{index}.safetensors"
        path.write_bytes(weights.hostile_safetensors(rng, valid))
        with pytest.raises(ConversionError, match=path.name):
            safetensors.load(str(path))
