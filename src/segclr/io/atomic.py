"""Atomic file writes: write to a temporary file in the target folder, then rename.

A reader (or a crash) never sees a half-written file under the final name, because
``os.replace`` is atomic on POSIX within one file system.

Temporary files are named ``.NAME.segclr-HOST-PID-RANDOM.tmp`` next to the final file ``NAME``
(``HOST`` is this machine's name, reduced to letters, digits and ``-``). A process killed in
the middle of a write leaves such a file behind; the next write into the same folder removes
every such file of this host whose process ``PID`` is no longer running. Files of other
programs, of other hosts and of live processes are never touched.

:func:`atomic_paths` writes several files as one unit (a MetaImage ``.mhd`` header and its
``.raw`` data): every file is written under a temporary name first, an existing final file of
the last one (the header) is removed, and the files are renamed in order, the last one last.
A kill during the renames can leave a new data file without its header, but never a header
next to data it does not describe.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"^\..+\.segclr-(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-[a-z0-9_]+\.tmp$")
_CLEANED: set[Path] = set()


def temp_prefix(name: str) -> str:
    """The start of the temporary name for final file ``name`` written by this process."""
    return f".{name}.segclr-{_HOST}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    except OSError:
        return True
    return True


def clean_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove this tool's temporary files in ``folder`` left by dead processes of this host."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if m and m["host"] == _HOST and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _new_temp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    if folder not in _CLEANED:  # once per folder and process
        _CLEANED.add(folder)
        clean_stale_temp_files(folder)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    tmp_path = _new_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Temporary paths for several files written as one unit; see the module docstring for the order."""
    finals = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for p in finals:
            temps.append(_new_temp(p))
        yield list(temps)
        if finals[-1].exists():  # no old header may describe the new data, even for an instant
            finals[-1].unlink()
        for tmp, final in zip(temps, finals):
            os.replace(tmp, final)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
