import shutil
import subprocess
import sys
from pathlib import Path

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
