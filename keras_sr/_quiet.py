"""TensorFlow's start-up chatter kept off the user's terminal.

Importing TensorFlow 2.21 prints about eight lines to stderr (absl's "before InitializeLog"
notice, oneDNN and CUDA-driver notices, twice, and later `failed call to cuInit` on every
CPU-only machine), and `TF_CPP_MIN_LOG_LEVEL` does not reach the ones printed while its
libraries load. So, unless asked for everything:

- `TF_CPP_MIN_LOG_LEVEL` defaults to 3 (a value the user set is kept);
- the import runs with the process's stderr (file descriptor 2) sent to a temporary file, which
  is replayed if the import fails, so a failure still shows why;
- absl's Python logging shows errors only.

"Asked for everything" is `KERAS_SR_VERBOSE=1` or `--verbose` on the command line: the commands'
`--verbose` is read here because TensorFlow is imported with `keras_sr`, before any argument
parser runs.
"""

import contextlib
import os
import sys
import tempfile
import warnings

# Set by keras_sr.startup.load(): this process is a keras-sr command, whose terminal stays quiet.
# A library user's process is left as it is.
in_command = False


def verbose():
    return os.environ.get("KERAS_SR_VERBOSE", "") not in ("", "0") or "--verbose" in sys.argv[1:]


@contextlib.contextmanager
def _stderr_captured():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no real stderr to redirect (an embedded interpreter, a closed stream)
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _command_warning(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning in a command: keras-sr's own warnings (a preset falling back to
    another copy of its weights) as one line, "keras-sr: warning: ...", instead of Python's
    file:line form with a line of keras-sr's source under it; any other warning, and every
    warning when verbose, as Python shows it."""
    if category.__module__.split(".")[0] != "keras_sr" or verbose():
        _python_showwarning(message, category, filename, lineno, file, line)
        return
    try:
        print(f"keras-sr: warning: {message}", file=sys.stderr if file is None else file)
    except OSError:
        pass  # as Python's: a warning never stops the command


_python_showwarning = warnings.showwarning


def show_command_warnings():
    """keras-sr's own warnings shown as one line each (see _command_warning): for commands."""
    global _python_showwarning
    if warnings.showwarning is not _command_warning:
        _python_showwarning = warnings.showwarning
        warnings.showwarning = _command_warning


def runtime_chatter_hidden():
    """In a command (unless verbose), a context in which native libraries' notices on stderr
    (LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU.") are kept off the terminal,
    and replayed if what runs in it fails; elsewhere, nothing."""
    if in_command and not verbose():
        return _stderr_captured()
    return contextlib.nullcontext()


def import_tensorflow_quietly():
    """Imports TensorFlow and Keras, quietly unless verbose (see the module docstring)."""
    if "tensorflow" in sys.modules or verbose():
        import keras  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_captured():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def tensorflow():
    """The `tensorflow` module, imported quietly where it has not started yet (a command that
    began without it: `keras-sr upscale` on LiteRT reading a 16-bit PNG)."""
    import_tensorflow_quietly()
    import tensorflow as tf

    return tf
