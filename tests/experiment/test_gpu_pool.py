"""benchmarks/gpu_pool.py: a study's unfinished cells, several processes at once, until a deadline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_pool = _load("gpu_pool", ROOT / "benchmarks" / "gpu_pool.py")
TINY_BASE = _load("runner_tests", Path(__file__).with_name("test_runner.py")).TINY_BASE


def _grid(tmp_path: Path) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [0, 1], "target_devices": ["cirrus_like"], "base": TINY_BASE,
        "methods": {"sup": {"objective": {"mode": "supervised"}}, "ub": {"objective": {"mode": "upper_bound"}}},
    }, sort_keys=False))
    return path


def test_first_rows_move_ahead_of_the_seed_major_order(tmp_path):
    grid = _grid(tmp_path)
    cells_dir, todo = gpu_pool.todo_cells(str(grid), str(tmp_path / "report"), [])
    assert cells_dir == tmp_path / "report" / "cells"
    assert todo == [("sup", 0), ("ub", 0), ("sup", 1), ("ub", 1)]
    assert gpu_pool.todo_cells(str(grid), str(tmp_path / "report"), ["u*"])[1] == [
        ("ub", 0), ("ub", 1), ("sup", 0), ("sup", 1)]
    assert gpu_pool.todo_cells(str(grid), str(tmp_path / "report"), [], ["u*"])[1] == [("ub", 0), ("ub", 1)]


def test_pool_trains_cells_into_the_grid_cells_dir_and_then_has_nothing_left(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the cell processes run `python -m segclr.cli` from the checkout
    grid, report = _grid(tmp_path), tmp_path / "report"
    argv = [str(grid), "--report-dir", str(report), "--workers", "2", "--deadline-s", "600",
            "--min-cell-s", "1", "--scratch", str(tmp_path / "scratch"), "--first", "ub"]
    assert gpu_pool.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 cells done, 0 failed" in out
    records = sorted(report.glob("cells/*.json"))
    assert [p.name for p in records] == [f"{m}__cirrus_like__seed{s}.json" for m in ("sup", "ub") for s in (0, 1)]
    assert all(json.loads(p.read_text())["rows"] for p in records)
    assert gpu_pool.todo_cells(str(grid), str(report), [])[1] == []
    # a deadline too short for any cell starts nothing and says so
    assert gpu_pool.main(argv[:6] + ["0"] + argv[7:]) == 0
    assert "0 cells to do" in capsys.readouterr().out
