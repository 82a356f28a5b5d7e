"""Committed study cells: one small JSON file per finished cell, the study's unit of progress.

A study takes longer than one sitting, so its progress lives in git, not in a scratch folder:
each finished cell writes ``CELLS/<method>__<target>__seed<k>.json`` holding

* the config hash, the full config (and the pretraining config),
* the per-domain summary rows and the per-B-scan rows the report is computed from,
* the training wall time and the machine it ran on.

The runner skips a cell whose file holds the same config hash, on any machine with a clone;
a file with another hash is stale and the cell is trained again (the file is replaced).
``RESULTS.md`` can be regenerated from the files alone (``segclr experiment ... --report-only``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from segclr import __version__
from segclr.io.atomic import atomic_write_text

CELL_FORMAT = 1


def cell_path(cells_dir: Path, method: str, target: str, seed: int) -> Path:
    return Path(cells_dir) / f"{method}__{target}__seed{seed}.json"


def machine_description() -> dict:
    """What ran the cell: enough to say whether two wall times are comparable."""
    device = "cpu"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    return {"machine": platform.machine(), "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device, "python": platform.python_version()}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere). Step times of
    two machines of one size differ by 2x and more (an AVX-512/AMX Xeon against an AVX2 EPYC)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_cell(path: Path, *, method: str, target: str, seed: int, config_hash: str, config: dict,
               pretrain: dict | None, train_seconds: float, rows: list[dict], cases: list[dict]) -> Path:
    record = {
        "format": CELL_FORMAT, "method": method, "target_device": target, "seed": seed,
        "config_hash": config_hash, "config": config, "pretrain": pretrain,
        "train_seconds": round(float(train_seconds), 1), "machine": machine_description(),
        "segclr_version": __version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows, "cases": cases,
    }
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=True) + "\n")
    return path


def read_cell(path: Path) -> dict | None:
    """The cell's record, or None when the file is missing or unreadable (then it is retrained)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") != CELL_FORMAT:
        return None
    return record


def describe_machines(records: list[dict]) -> str:
    """Which machines trained these cells, e.g.
    ``"AMD EPYC (AVX2, 2 threads, cpu, torch 2.13.0+cpu): 12 cells"``; cells recorded before the CPU
    model was kept count as ``x86_64 (CPU model not recorded, 2 threads)``."""
    counts: dict[str, int] = {}
    for record in records:
        m = record.get("machine") or {}
        name = (f"{m['cpu']} ({m.get('cpu_capability', '?')}, {m.get('torch_threads', '?')} threads, "
                f"{m.get('device', 'cpu')}, torch {m.get('torch', '?')})" if m.get("cpu")
                else f"{m.get('machine', '?')} (CPU model not recorded, {m.get('torch_threads', '?')} threads)")
        counts[name] = counts.get(name, 0) + 1
    return "; ".join(f"{name}: {n} cell{'s' if n != 1 else ''}" for name, n in sorted(counts.items())) or "none"


def cell_record(path: Path, config_hash: str) -> dict | None:
    """The cell's record when it holds ``config_hash`` (a finished cell of this config), else None."""
    record = read_cell(path)
    return record if record is not None and record.get("config_hash") == config_hash else None


def cell_is_done(path: Path, config_hash: str) -> bool:
    return cell_record(path, config_hash) is not None


def git_commit_cell(path: Path, message: str) -> bool:
    """Commit exactly this cell file (nothing else staged is included); False when git is unavailable."""
    path = Path(path).resolve()
    try:
        root = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "--show-toplevel"], check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["git", "-C", root, "add", "--", str(path)], check=True, capture_output=True)
        subprocess.run(["git", "-C", root, "commit", "-q", "-m", message, "--", str(path)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        print(f"[segclr] warning: could not commit {path}: {str(detail).strip()[:200]}", flush=True)
        return False
    return True
