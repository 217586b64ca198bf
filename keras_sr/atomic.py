"""Writing files so that no reader, crash or concurrent writer ever sees half of one."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (same extension, unique name) to write to; it
    replaces `path` in one rename when the block ends without an error, and is removed when it
    raises, so an existing `path` is kept whole."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(path)
    # The temporary ends in the whole name, so that writers that check a compound extension
    # (Keras' `.weights.h5`) take it.
    handle, temporary = tempfile.mkstemp(prefix=".", suffix=f".{name}", dir=directory)
    os.close(handle)
    os.chmod(temporary, 0o644)  # mkstemp makes it private; the result is an ordinary file
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_model_once(path, build):
    """`path`, a `.keras` file of the model `build()` returns, built and saved only when the
    file is not there yet (a cache entry); two processes saving at once never leave half of
    one."""
    if not os.path.isfile(path):
        import keras

        with atomic_path(path) as temporary:
            keras.saving.save_model(build(), temporary)
    return path


def write_bytes(path, data):
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(data)


def read_entry(path, key):
    """`key`'s value in the JSON object file `path` (a cache of verdicts), or None where the
    file or the key is missing or the file unreadable."""
    import json

    try:
        with open(path) as file:
            return json.load(file).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def store_entry(path, key, value):
    """Sets `key` to `value` in the JSON object file `path`, written whole; a file that cannot
    be written is left as it was (a cache that only costs the next run its work again)."""
    import json

    try:
        try:
            with open(path) as file:
                entries = json.load(file)
        except (OSError, ValueError):
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        entries[key] = value
        write_bytes(path, json.dumps(entries, indent=1).encode())
    except OSError:
        pass
