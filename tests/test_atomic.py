import os

import pytest

from keras_sr import atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(str(target)) as temporary:
            assert temporary.endswith(".keras") and os.path.dirname(temporary) == str(tmp_path)
            open(temporary, "wb").write(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]


def test_a_finished_write_replaces_the_file_readable_by_others(tmp_path):
    target = tmp_path / "sub" / "out.png"
    atomic.write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_mode & 0o777 == 0o644
    assert os.listdir(target.parent) == ["out.png"]
