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


# ------------------------------------------------------------------------- temp names and cleanup
def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_file_is_named_after_the_target_and_folders_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"  # two missing levels
    seen = []
    with atomic.atomic_path(target) as tmp:
        seen.append(tmp.name)
        tmp.write_text("x")
    assert target.read_text() == "x"
    (name,) = seen
    assert name.startswith(atomic.temp_prefix("out.json"))
    assert name.startswith(f".out.json.segclr-{atomic._HOST}-{os.getpid()}-")
    assert name.endswith(".tmp")
    assert atomic._TEMP.match(name)["pid"] == str(os.getpid())  # the cleaner recognises it as ours


def test_pid_alive(monkeypatch):
    import subprocess
    import sys

    assert atomic._pid_alive(os.getpid()) is True
    assert atomic._pid_alive(_dead_pid()) is False
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    sent = []
    real_kill = os.kill
    monkeypatch.setattr(atomic.os, "kill", lambda pid, sig: sent.append((pid, sig)) or real_kill(pid, sig))
    try:
        assert atomic._pid_alive(child.pid) is True
        assert sent == [(child.pid, 0)]  # only probed with signal 0, never signalled
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.2)  # and still running
    finally:
        monkeypatch.undo()
        child.kill()
        child.wait()

    def denied(pid, sig):
        raise PermissionError("another user's process")

    monkeypatch.setattr(atomic.os, "kill", denied)
    assert atomic._pid_alive(12345) is True

    def other_error(pid, sig):
        raise OSError("something else")

    monkeypatch.setattr(atomic.os, "kill", other_error)
    assert atomic._pid_alive(12345) is True  # in doubt, the file is left alone


def test_clean_stale_temp_files_removes_only_this_hosts_dead_processes_files(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    host = atomic._HOST
    other_host = "otherhost" if host != "otherhost" else "elsewhere"
    names = {
        "stale": f".out.json.segclr-{host}-{dead}-abc_12.tmp",
        "live": f".out.json.segclr-{host}-{live}-abc_12.tmp",
        "other_host": f".out.json.segclr-{other_host}-{dead}-abc_12.tmp",
        "not_ours": f".out.json.other-{host}-{dead}-abc_12.tmp",
        "final": "out.json",
    }
    for n in names.values():
        (tmp_path / n).write_text("x")
    stale_dir = tmp_path / f".d.segclr-{host}-{dead}-xyz.tmp"  # matches, but cannot be unlinked
    stale_dir.mkdir()
    removed = atomic.clean_stale_temp_files(tmp_path)
    assert removed == [tmp_path / names["stale"]]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([n for k, n in names.items() if k != "stale"] + [stale_dir.name])
    assert atomic.clean_stale_temp_files(tmp_path / "missing") == []


def test_first_write_into_a_folder_cleans_it_once(tmp_path, monkeypatch):
    stale = tmp_path / f".out.txt.segclr-{atomic._HOST}-{_dead_pid()}-abc.tmp"
    stale.write_text("left by a killed writer")
    calls = []
    real = atomic.clean_stale_temp_files
    monkeypatch.setattr(atomic, "clean_stale_temp_files", lambda folder: calls.append(folder) or real(folder))
    atomic.atomic_write_text(tmp_path / "out.txt", "one")
    assert not stale.exists()
    assert calls == [tmp_path.resolve()]
    atomic.atomic_write_text(tmp_path / "other.txt", "two")
    assert calls == [tmp_path.resolve()]  # once per folder and process
    assert (tmp_path / "out.txt").read_text() == "one" and (tmp_path / "other.txt").read_text() == "two"
