"""Saved labels, exports and models keep the file mode users expect (issue 12): a file that is
replaced keeps its mode, a new file gets the umask's default (``0o666 & ~umask``), never the
``0600`` of a private temporary file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from core import export
from core.io import atomic_output, write_bytes_atomic, write_image, write_mask

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _save_label(path: Path) -> None:
    write_mask(path, np.eye(8, dtype=bool))


def _save_image(path: Path) -> None:
    write_image(path, np.zeros((4, 4, 3), np.uint8))


def _save_export(path: Path) -> None:
    written = export.export_mask(path.parent, path.name, np.full((8, 8), 0.9, np.float32))
    assert written == path


def _save_checkpoint(path: Path) -> None:
    pytest.importorskip("torch")
    from core.checkpoint import save_checkpoint
    from core.models import build_model

    save_checkpoint(path, build_model("unet", width=4, depth=1), {"epochs_done": 1})


WRITERS = {
    "label": (_save_label, "00001.png"),
    "image": (_save_image, "image.png"),
    "export": (_save_export, "00001.png"),
    "checkpoint": (_save_checkpoint, "model.safetensors"),
    "bytes": (lambda p: write_bytes_atomic(p, b"data"), "manifest.csv"),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_new_file_gets_the_umask_default(tmp_path, umask, kind):
    write, name = WRITERS[kind]
    target = tmp_path / name
    write(target)
    assert mode(target) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize("existing", [0o640, 0o600, 0o664, 0o444])
def test_a_replaced_file_keeps_its_mode(tmp_path, kind, existing):
    write, name = WRITERS[kind]
    target = tmp_path / name
    target.write_bytes(b"old")
    target.chmod(existing)
    write(target)
    assert mode(target) == existing
    assert target.read_bytes() != b"old"
    write(target)  # and again: a second save is no different
    assert mode(target) == existing


def test_a_writer_that_recreates_the_temporary_file_still_gets_the_mode(tmp_path):
    """Writers such as GDAL may delete and recreate the file they are given."""
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.bin"
        with atomic_output(new) as tmp:
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"x")
            os.close(fd)
        assert mode(new) == 0o644
        old_file = tmp_path / "old.bin"
        old_file.write_bytes(b"old")
        old_file.chmod(0o640)
        with atomic_output(old_file) as tmp:
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        assert mode(old_file) == 0o640
    finally:
        os.umask(old)


def test_the_temporary_file_has_the_documented_name(tmp_path):
    from core.io import is_temp_file_name, temp_file_target

    with atomic_output(tmp_path / "00001.png") as tmp:
        assert tmp.parent == tmp_path
        assert is_temp_file_name(tmp.name) and temp_file_target(tmp.name) == "00001.png"
