import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_sr
from keras_sr import cli


def console_script():
    """The installed `keras-sr` script: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "keras-sr"
    found = str(beside) if beside.exists() else shutil.which("keras-sr")
    assert found, "the keras-sr console script is not installed: run the README's set-up command"
    return found


def test_console_script_prints_versions():
    result = subprocess.run([console_script(), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"keras-sr {keras_sr.__version__}, tensorflow 2.21")
    assert "keras 3." in result.stdout


def test_console_script_help():
    result = subprocess.run([console_script(), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: keras-sr")


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "no command given" in capsys.readouterr().err


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "frobnicate" in capsys.readouterr().err


def test_convert_imports_and_exports_back(tmp_path, capsys):
    from keras_sr.convert import basicsr, export
    from keras_sr.models import RRDBNet
    from tests.convert.test_ncnn import TINY_RRDB, randomized

    model = randomized(RRDBNet(scale=2, **TINY_RRDB))
    source = str(tmp_path / "net_g.pth")
    export(model, source)
    imported = str(tmp_path / "net.keras")
    assert cli.main(["convert", source, "-o", imported]) == 0
    assert "RRDBNet(scale=2, num_blocks=2" in capsys.readouterr().out
    back = str(tmp_path / "back.safetensors")
    assert cli.main(["convert", imported, "--to", "basicsr", "-o", back]) == 0
    from keras_sr.convert import safetensors
    exported = safetensors.load(back)
    for key, value in basicsr.state_dict_of(model).items():
        np.testing.assert_array_equal(exported[key], value)
    # An existing output is kept unless --overwrite.
    before = open(imported, "rb").read()
    assert cli.main(["convert", source, "-o", imported]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert open(imported, "rb").read() == before
    assert cli.main(["convert", source, "-o", imported, "--overwrite"]) == 0


@pytest.mark.parametrize("argv,message", [
    (["convert", "missing.pth", "-o", "x.keras"], "no such file: missing.pth"),
    (["convert", "notes.txt", "-o", "x.keras"], "unknown weights format"),
    (["convert", "a.keras", "--to", "keras", "-o", "a.pth"], "does not go with the output"),
])
def test_convert_errors_name_the_problem(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not weights")
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_commands_are_quiet_unless_asked(tmp_path):
    """TensorFlow's start-up chatter (absl, oneDNN, CUDA-driver and cuInit lines) stays off
    stderr; the one line left says what runs the model and at which precision; --verbose
    shows TensorFlow's lines again."""
    import subprocess

    import numpy as np
    from PIL import Image

    from keras_sr.models import SRVGGNetCompact

    SRVGGNetCompact(scale=2, num_convs=1, num_features=4).save(tmp_path / "g.keras")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_SR_VERBOSE")}
    command = [console_script(), "upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
               "--model", str(tmp_path / "g.keras"), "--overwrite"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           env=environment)
    assert quiet.returncode == 0, quiet.stderr
    # Where TensorFlow would compute float32 (oneDNN off), the first run also says that it
    # times both engines once (keras_sr.engines).
    lines = [line for line in quiet.stderr.splitlines()
             if not line.startswith("keras-sr: timing TensorFlow and LiteRT")]
    for noise in ("E0000", "W0000", "I0000", "cuInit", "absl", "oneDNN custom operations"):
        assert not any(noise in line for line in lines), (noise, quiet.stderr)
    assert lines[0].startswith("keras-sr upscale: ") and " on CPU (" in lines[0] \
        or " on 1 x " in lines[0]
    assert len(lines) == 2 and lines[1].endswith("a.png")
    loud = subprocess.run(command + ["--verbose"], capture_output=True, text=True, timeout=300,
                          env=environment)
    # --verbose shows the chatter of what runs the model: TensorFlow's log lines, or LiteRT's
    # notice where the first run's verdict chose LiteRT (a float32 CPU, such as an AVX2-only
    # one), so that this run reads the cached flatbuffer without starting TensorFlow.
    chatter = "Created TensorFlow Lite XNNPACK delegate" if " through LiteRT" in lines[0] \
        else "I0000"
    assert loud.returncode == 0 and chatter in loud.stderr, (lines[0], loud.stderr)


def test_every_entry_point_is_a_keras_sr_command(tmp_path, capsys):
    """The applications run under `keras-sr` with their own parsers and `keras-sr` names."""
    import numpy as np
    from PIL import Image

    from keras_sr.models import SRVGGNetCompact

    assert cli.main(["train", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "quick" in listing and "esrgan_x4" in listing
    assert "three to four on an AVX2-only one (213 s on a 2-core AMD Zen 3 with oneDNN, " \
        "which training turns on there; 472 s with Eigen before); `chelsea.png` is held out " \
        "for validation." in listing
    (tmp_path / "hr").mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "hr" / "a.png")
    assert cli.main(["evaluate", "--model", "bicubic", "--data", str(tmp_path / "hr"),
                     "--scale", "2", "--no-progress"]) == 0
    model = tmp_path / "g.keras"
    SRVGGNetCompact(scale=2, num_convs=1, num_features=4).save(model)
    assert cli.main(["interpolate", "--psnr", str(model), "--gan", str(model), "--alpha",
                     "0.5", "--out", str(tmp_path / "mix.keras")]) == 0
    assert cli.main(["export", "saved-model", "--model", str(model), "--out",
                     str(tmp_path / "models" / "g")]) == 0
    assert (tmp_path / "models" / "g" / "1" / "saved_model.pb").is_file()
    assert cli.main(["export", "tflite", "--model", str(model), "--out",
                     str(tmp_path / "g.tflite")]) == 0
    assert "MiB, float32, not quantized); parity" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["export", "tflite", "--help"])
    assert capsys.readouterr().out.startswith("usage: keras-sr export tflite")
    assert cli.main(["export", "onnx"]) == 2
    assert "choose saved-model, tflite or client" in capsys.readouterr().err
    for command in (["make-tfrecords", "--help"], ["export", "client", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(command)
        assert capsys.readouterr().out.startswith(f"usage: keras-sr {' '.join(command[:-1])}")


def test_upscale_help_names_the_presets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["upscale", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    from keras_sr import zoo

    for preset in zoo.RELEASES:
        assert preset in shown
