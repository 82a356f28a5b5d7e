"""benchmarks/gpu_curves.py: in-training validation curves from a GPU session's runs.tgz."""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path

import pytest


@pytest.fixture
def gpu_curves(load_script):
    return load_script("benchmarks/gpu_curves.py")


HEADER = "epoch,loss/sup,loss/total,step,val/dice_per_bscan,val/dice_pooled\n"


def _metrics(last_step: int, scores: dict[int, tuple[float, float]]) -> str:
    """Lightning-style rows every 10 steps; after a validation, its score repeats on every later row."""
    lines, current = [HEADER], None
    for step in range(9, last_step, 10):
        for at, score in scores.items():
            if step == at - 1:
                current = score
        val = f"{current[1]},{current[0]}" if current else ","
        lines.append(f"0,0.5,0.5,{step},{val}\n")
    return "".join(lines)


def _archive(path: Path, runs: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for run, text in runs.items():
            data = text.encode()
            info = tarfile.TarInfo(f"pool_grid/runs/{run}/runs/m/cirrus_like/seed0-abc/train/logs/metrics.csv")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_curves_of_a_finished_and_a_stopped_run(tmp_path, capsys, gpu_curves):
    first = _archive(tmp_path / "call1.tgz", {
        "a__seed0": _metrics(1000, {500: (0.61, 0.40), 1000: (0.70, 0.52)}),
        "b__seed0": _metrics(730, {500: (0.55, 0.30)}),  # stopped at step 730
    })
    second = _archive(tmp_path / "call2.tgz", {"b__seed0": _metrics(1000, {500: (0.58, 0.33), 1000: (0.66, 0.47)})})
    out = tmp_path / "out"
    assert gpu_curves.main([str(first), str(second), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "curves.csv").open()))
    got = {(r["call"], r["run"], int(r["step"])): (float(r["val_dice_pooled"]), float(r["val_dice_per_bscan"]),
                                                  int(r["last_step"])) for r in rows}
    assert got == {
        ("call1", "a__seed0", 500): (0.61, 0.40, 1000), ("call1", "a__seed0", 1000): (0.70, 0.52, 1000),
        ("call1", "b__seed0", 500): (0.55, 0.30, 730),
        ("call2", "b__seed0", 500): (0.58, 0.33, 1000), ("call2", "b__seed0", 1000): (0.66, 0.47, 1000),
    }
    md = (out / "curves.md").read_text()
    assert "| b__seed0 | call1 | 730 | 0.550 / 0.300 |  |" in md
    assert "| b__seed0 | call2 | 1000 | 0.580 / 0.330 | 0.660 / 0.470 |" in md
    assert md in capsys.readouterr().out


def test_missing_archive_and_no_scores_are_errors(tmp_path, capsys, gpu_curves):
    assert gpu_curves.main([str(tmp_path / "nope.tgz"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.tgz: no such archive" in capsys.readouterr().err
    empty = _archive(tmp_path / "e.tgz", {"a__seed0": _metrics(100, {})})
    assert gpu_curves.main([str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "no validation scores" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
