"""The commands answer before TensorFlow starts, and say what they are doing while it runs."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.test_cli import console_script
from training import loop

# A stand-in `tensorflow` and `keras` that refuse to be imported: a command that imports either
# before its arguments are parsed fails with this message instead of answering.
POISON = "tensorflow imported before the arguments were parsed"


@pytest.fixture(scope="module")
def poisoned_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("poison")
    for package in ("tensorflow", "keras"):
        (folder / package).mkdir()
        (folder / package / "__init__.py").write_text(f"raise ImportError({POISON!r})\n")
    return str(folder)


PYTHON_M = [sys.executable, "-m"]
# (command line, exit status, what the output starts with or holds)
ANSWERED_BEFORE_TENSORFLOW = [
    (["--help"], 0, "usage: keras-sr"),
    (["--version"], 0, "keras-sr 0."),
    (["export", "--help"], 0, "usage: keras-sr export {saved-model,tflite,client}"),
    (["export"], 2, "choose saved-model, tflite or client (no target)"),
    (["train", "--help"], 0, "usage: keras-sr train"),
    (["train", "--list"], 0, "quick"),
    (["train", "nope"], 2, "keras-sr train: error: unknown experiment 'nope'"),
    (["train", "--set", "bogus=1"], 2, "unknown configuration key 'bogus'"),
    (["train", "--set", "train.steps=0"], 2, "train.steps: must be at least 1"),
    (["train", "--set", "model.scale=5"], 2, "model.scale: rrdbnet supports (1, 2, 4)"),
    (["evaluate", "--help"], 0, "usage: keras-sr evaluate"),
    (["evaluate", "--scale", "5"], 2, "invalid choice: 5"),
    (["evaluate", "--model", "bicubic", "--data", "/no/such", "--scale", "4"], 2,
     "keras-sr evaluate: error: --data '/no/such' is not a folder"),
    (["interpolate", "--help"], 0, "usage: keras-sr interpolate"),
    (["interpolate", "--psnr", "a", "--gan", "b", "--alpha", "2"], 2, "outside [0, 1]"),
    (["export", "saved-model", "--help"], 0, "usage: keras-sr export saved-model"),
    (["export", "tflite", "--quantize", "x"], 2, "invalid choice: 'x'"),
    (["export", "client", "--help"], 0, "usage: keras-sr export client"),
    # Every command's output is -o, as upscale's and convert's.
    (["export", "saved-model", "--model", "m.keras"], 2, "required: -o/--out"),
    (["export", "tflite", "--model", "m.keras"], 2, "required: -o/--out"),
    (["make-tfrecords", "--scale", "4"], 2, "required: -o/--out"),
    (["interpolate", "--help"], 0, "-o OUT, --out OUT"),
    (["train", "--help"], 0, "-o OUTPUT, --output OUTPUT"),
    (["make-tfrecords", "--help"], 0, "usage: keras-sr make-tfrecords"),
    (["upscale", "--help"], 0, "usage: keras-sr upscale"),
    (["upscale", "no-such.png", "-o", "out", "--model", "realesrgan-x4plus"], 1,
     "no image files among the inputs"),
    (["convert", "--help"], 0, "usage: keras-sr convert"),
    (PYTHON_M + ["training.fit", "--help"], 0, "usage: python -m training.fit"),
    (PYTHON_M + ["training.evaluate", "--help"], 0, "usage: python -m training.evaluate"),
    (PYTHON_M + ["training.interpolate", "--help"], 0, "usage: python -m training.interpolate"),
    (PYTHON_M + ["export.saved_model", "--help"], 0, "usage: python -m export.saved_model"),
    (PYTHON_M + ["export.tflite", "--help"], 0, "usage: python -m export.tflite"),
    (PYTHON_M + ["export.client", "--help"], 0, "usage: python -m export.client"),
]


@pytest.mark.parametrize("argv,status,expected", ANSWERED_BEFORE_TENSORFLOW,
                         ids=[" ".join(argv[-3:]) for argv, _, _ in ANSWERED_BEFORE_TENSORFLOW])
def test_help_and_argument_errors_are_answered_before_tensorflow(poisoned_path, tmp_path, argv,
                                                                  status, expected):
    command = argv if argv[0] == sys.executable else [console_script(), *argv]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [poisoned_path, os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env=environment, cwd=os.getcwd())
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    assert POISON not in output and "Traceback" not in output, output[-2000:]
    assert result.returncode == status, output[-2000:]
    assert expected in output, output[-2000:]
    # Python, numpy and argparse alone: 0.1-0.35 s on 2-core AMD EPYCs; TensorFlow's import
    # would add 3-4 s.
    assert seconds < 1.0, seconds


def test_export_help_lists_the_targets():
    result = subprocess.run([console_script(), "export", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for target in ("saved-model", "tflite", "client"):
        assert f"\n  {target}" in result.stdout


def test_evaluate_help_says_what_it_does_in_a_whole_sentence():
    result = subprocess.run([console_script(), "evaluate", "--help"], capture_output=True,
                            text=True, timeout=60)
    description = " ".join(result.stdout.split("\n\n")[1].split())
    assert description.endswith("measured as the papers measured them."), description


def test_import_keras_sr_still_registers_everything_at_once():
    code = ("import keras_sr, keras; "
            "print(keras.saving.get_registered_object('keras_sr>RRDBNet').__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={k: v for k, v in os.environ.items()
                                              if k != "KERAS_SR_PARSING"})
    assert result.stdout.strip() == "RRDBNet", result.stderr[-2000:]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Terminal:
    def __init__(self):
        self.written = []

    def write(self, text):
        self.written.append(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_counts_only_the_steps_this_process_ran(monkeypatch):
    # A run resumed at step 300 of 1000: the first step traces (40 s), the next two take 6 s
    # each. The rate and the ETA come from those two, not from 302 steps over 52 s.
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock)
    terminal = Terminal()
    progress = loop.Progress(1000, 300, stream=terminal)
    clock.now += 40
    progress.update(301, {"g_loss": 0.25}, logged=False)
    assert terminal.written[-1] == "\r\033[Kstep 301/1000  g_loss 0.25  first step 40 s " \
                                   "(tracing)"
    for step in (302, 303):
        clock.now += 6
        progress.update(step, {"g_loss": 0.125}, logged=False)
    assert terminal.written[-1] == "\r\033[Kstep 303/1000  g_loss 0.125  6.0 s/step  ETA " \
                                   "1:09:42"
    clock.now += 2
    assert progress.remaining_in_step() == pytest.approx(4.0)


def test_progress_writes_a_line_per_log_interval_off_a_terminal(monkeypatch):
    class LogFile(Terminal):
        def isatty(self):
            return False

    log_file = LogFile()
    progress = loop.Progress(10, 0, stream=log_file)
    progress.update(1, {"pixel_loss": 0.5}, logged=False)
    progress.update(2, {"pixel_loss": 0.5}, logged=True)
    assert len(log_file.written) == 1 and log_file.written[0].startswith("step 2/10  pixel_loss")


def test_a_signal_is_announced_while_the_step_still_runs(monkeypatch):
    # The main thread is busy (as in a TensorFlow step, where Python's own handler waits for
    # the step to end); the announcement comes from another thread at once.
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock)
    progress = loop.Progress(100, 0, stream=Terminal())
    clock.now += 30
    progress.update(1, {"g_loss": 1.0}, logged=False)
    clock.now += 10
    progress.update(2, {"g_loss": 1.0}, logged=False)
    clock.now += 4
    said, heard = [], threading.Event()

    def log(line):
        said.append(line)
        heard.set()

    with loop.Interruption(progress=progress, log=log) as interruption:
        os.kill(os.getpid(), signal.SIGINT)
        assert heard.wait(5)
    assert interruption.signal == signal.SIGINT
    assert said == ["\nSIGINT: finishing step 3, about 6 s more, then saving a checkpoint and "
                    "stopping"]


def test_litert_notices_stay_off_the_terminal_unless_verbose(tmp_path):
    import numpy as np
    from PIL import Image

    from export.tflite import convert
    from keras_sr.models import SRVGGNetCompact

    (tmp_path / "g.tflite").write_bytes(convert(SRVGGNetCompact(scale=2, num_convs=1,
                                                                num_features=4)))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    command = [console_script(), "upscale", str(tmp_path / "a.png"), "-o",
               str(tmp_path / "o"), "--model", str(tmp_path / "g.tflite"), "--overwrite"]
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_SR_VERBOSE")}
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           env=environment)
    assert quiet.returncode == 0, quiet.stderr
    assert "XNNPACK delegate" not in quiet.stderr and len(quiet.stderr.splitlines()) == 2, \
        quiet.stderr
    loud = subprocess.run(command + ["--verbose"], capture_output=True, text=True,
                          timeout=300, env=environment)
    assert loud.returncode == 0 and "Created TensorFlow Lite XNNPACK delegate" in loud.stderr


AVX2_ONLY = frozenset({"avx", "avx2", "fma", "sse4_2"})
BFLOAT16_CPU = AVX2_ONLY | {"avx512f", "avx512_vnni", "avx512_bf16"}


MATMUL = {"KERAS_SR_CONV_WEIGHT_GRADIENT": "matmul"}
SPLIT = {"KERAS_SR_DENSE_BLOCK": "split"}


@pytest.mark.parametrize("flags,environ,expected", [
    # TensorFlow leaves oneDNN off on an AVX2-only CPU: training turns it on, not the arena,
    # and takes 3x3 weight gradients as matrix products (oneDNN's AVX2 kernel is slow).
    (AVX2_ONLY, {}, {"TF_ENABLE_ONEDNN_OPTS": "1", **MATMUL}),
    # The user chose Eigen: kept, with the arena and the split dense blocks Eigen's kernels
    # want, each unless the user set it.
    (AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"TF_CPU_ALLOCATOR_USE_BFC": "true", **SPLIT}),
    (AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPU_ALLOCATOR_USE_BFC": "false"}, SPLIT),
    # A value TensorFlow ignores ("yes"): its default, oneDNN off here, so Eigen's switches.
    (AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "yes"}, {"TF_CPU_ALLOCATOR_USE_BFC": "true", **SPLIT}),
    (AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_SR_DENSE_BLOCK": "concatenate"},
     {"TF_CPU_ALLOCATOR_USE_BFC": "true"}),
    (BFLOAT16_CPU, {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"TF_CPU_ALLOCATOR_USE_BFC": "true", **SPLIT}),
    # The user turned oneDNN on: its AVX2 kernels run, so the weight gradients are switched.
    (AVX2_ONLY, {"TF_ENABLE_ONEDNN_OPTS": "1"}, MATMUL),
    # ... unless the user chose TensorFlow's own.
    (AVX2_ONLY, {"KERAS_SR_CONV_WEIGHT_GRADIENT": "tensorflow"}, {"TF_ENABLE_ONEDNN_OPTS": "1"}),
    # oneDNN on by TensorFlow's own default, with its AVX-512 kernels: nothing to set.
    (BFLOAT16_CPU, {}, {}),
])
def test_training_switches_follow_the_cpu_and_the_users_settings(monkeypatch, flags, environ,
                                                                  expected):
    from keras_sr import startup

    monkeypatch.setattr("platform.system", lambda: "Linux")
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    switches = startup.workload_switches("train", environ=environ, flags=flags)
    assert {variable: value for variable, (value, _) in switches.items()} == expected
    assert all(why for _, why in switches.values())
    # Only training sets anything.
    assert startup.workload_switches(None, environ=environ, flags=flags) == {}


def test_split_dense_blocks_are_chosen_on_x86_linux_only(monkeypatch):
    # Measured there; elsewhere TensorFlow may run oneDNN by its own default (Arm Neoverse V1).
    from keras_sr import startup

    monkeypatch.setattr("platform.system", lambda: "Linux")
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    monkeypatch.setattr("keras_sr.precision._cpuinfo", {}.get)  # an Arm core, not a V1
    switches = startup.workload_switches("train", environ={}, flags=frozenset())
    assert {variable: value for variable, (value, _) in switches.items()} == {
        "TF_CPU_ALLOCATOR_USE_BFC": "true"}
    # A Neoverse V1, where TensorFlow runs oneDNN by default: as with oneDNN on x86, nothing.
    monkeypatch.setattr("keras_sr.precision._cpuinfo",
                        {"CPU implementer": "0x41", "CPU part": "0xd40"}.get)
    assert startup.workload_switches("train", environ={}, flags=frozenset()) == {}


@pytest.mark.parametrize("environ,expected", [
    ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "true"),  # Eigen kernels: the BFC arena
    ({"TF_ENABLE_ONEDNN_OPTS": "1"}, None),  # oneDNN: measured to change nothing, left alone
    ({"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPU_ALLOCATOR_USE_BFC": "false"}, "false"),  # theirs
])
def test_training_sets_the_allocator_per_cpu_before_tensorflow_and_keeps_a_users_value(
        environ, expected):
    code = ("import os, sys; from keras_sr import startup; startup.load(sys.argv[1]); "
            "print(os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'), startup.SWITCHES)")
    base = {key: value for key, value in os.environ.items()
            if key not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPU_ALLOCATOR_USE_BFC")}
    for workload, wanted in (("train", expected), ("none", environ.get(
            "TF_CPU_ALLOCATOR_USE_BFC"))):
        result = subprocess.run([sys.executable, "-c", code, workload], capture_output=True,
                                text=True, timeout=120,
                                env=dict(base, KERAS_SR_PARSING="1", **environ))
        value, switches = result.stdout.strip().split(" ", 1)
        assert value == str(wanted), (workload, result.stdout, result.stderr[-1000:])
        # Only what keras-sr set itself is reported (and said on the status line).
        assert ("TF_CPU_ALLOCATOR_USE_BFC" in switches) == (
            workload == "train" and expected == "true" and "TF_CPU_ALLOCATOR_USE_BFC" not in
            environ), switches
    # A library import sets nothing.
    result = subprocess.run([sys.executable, "-c", "import os, keras_sr; print(os.environ.get("
                             "'TF_CPU_ALLOCATOR_USE_BFC'))"], capture_output=True, text=True,
                            timeout=120, env=dict(base, **environ))
    assert result.stdout.strip() == str(environ.get("TF_CPU_ALLOCATOR_USE_BFC"))


@pytest.mark.parametrize("variable,message", [
    ("KERAS_SR_CONV_WEIGHT_GRADIENT",
     "KERAS_SR_CONV_WEIGHT_GRADIENT='fast' is not a weight-gradient choice; expected one of "
     "tensorflow, matmul"),
    ("KERAS_SR_DENSE_BLOCK",
     "KERAS_SR_DENSE_BLOCK='fast' is not a dense-block choice; expected one of "
     "concatenate, split"),
])
def test_a_wrong_training_choice_stops_a_command_with_one_line(tmp_path, variable, message):
    code = "from keras_sr import startup; startup.load('train'); print('loaded')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path,
                            env=dict(os.environ, KERAS_SR_PARSING="1", **{variable: "fast"}))
    assert result.returncode == 1 and "loaded" not in result.stdout
    assert result.stderr.strip().splitlines() == [message], result.stderr
    assert list(tmp_path.iterdir()) == []


WARNS = ("import warnings, sys; from keras_sr import startup, presets; "
         "startup.load(tensorflow=False); "
         "warnings.warn('copy A missing; using copy B', presets.PresetFallbackWarning); "
         "warnings.warn('not ours', UserWarning); print('went on')")


def test_a_command_shows_keras_sr_warnings_as_one_line_and_others_as_python_does(tmp_path):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("KERAS_SR_VERBOSE", "PYTHONWARNINGS")}
    result = subprocess.run([sys.executable, "-c", WARNS], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path,
                            env=dict(environment, KERAS_SR_PARSING="1"))
    assert result.returncode == 0 and result.stdout == "went on\n", result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "keras-sr: warning: copy A missing; using copy B", result.stderr
    # Python's own form for a warning that is not keras-sr's: where it came from.
    assert lines[1].endswith("UserWarning: not ours") and lines[1].startswith("<string>:1:")
    assert len(lines) == 2, result.stderr
    # Verbose: every warning as Python shows it, keras-sr's included.
    loud = subprocess.run([sys.executable, "-c", WARNS], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env=dict(environment, KERAS_SR_PARSING="1", KERAS_SR_VERBOSE="1"))
    assert loud.returncode == 0
    assert "<string>:1: PresetFallbackWarning: copy A missing; using copy B" in loud.stderr
    assert "keras-sr: warning:" not in loud.stderr


def test_a_onednn_value_tensorflow_ignores_is_named_in_one_line(tmp_path):
    code = "from keras_sr import startup; startup.load(tensorflow=False); print('went on')"
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("KERAS_SR_VERBOSE", "PYTHONWARNINGS")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path,
                            env=dict(environment, KERAS_SR_PARSING="1",
                                     TF_ENABLE_ONEDNN_OPTS="yes"))
    assert result.returncode == 0 and result.stdout == "went on\n", result.stderr
    assert result.stderr.startswith("keras-sr: warning: TF_ENABLE_ONEDNN_OPTS='yes' is not 0, "
                                    "1, true or false, so TensorFlow ignores it"), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
