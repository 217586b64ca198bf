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
