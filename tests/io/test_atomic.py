"""The atomic writer: the old content survives any failure, no temp file is left, usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from segclr.io import atomic


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_write_replaces_content_with_the_usual_mode(tmp_path):
    target = tmp_path / "out.txt"
    atomic.atomic_write_text(target, "one")
    atomic.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600
    assert _leftovers(tmp_path) == []


def test_a_failing_rename_keeps_the_old_content_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_an_error_inside_the_block_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            assert tmp != target and tmp.parent == target.parent  # written beside, renamed at the end
            assert target.read_bytes() == b"old"  # never in place
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_several_files_as_one_unit_roll_back_together(tmp_path):
    data, header = tmp_path / "v.raw", tmp_path / "v.mhd"
    data.write_bytes(b"old data")
    header.write_text("old header")
    with pytest.raises(RuntimeError):
        with atomic.atomic_paths(data, header) as (t_data, t_header):
            t_data.write_bytes(b"new data")
            raise RuntimeError("killed before the header")
    assert data.read_bytes() == b"old data" and header.read_text() == "old header"
    assert _leftovers(tmp_path) == []
    with atomic.atomic_paths(data, header) as (t_data, t_header):
        t_data.write_bytes(b"new data")
        t_header.write_text("new header")
    assert data.read_bytes() == b"new data" and header.read_text() == "new header"
    for p in (data, header):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~_umask()
