"""benchmarks/recipe_delta.py: the rows two study grids share, side by side, with an unpaired interval."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import ttest_ind

from segclr.experiment.cells import CELL_FORMAT


def _cell(folder, method, seed, pooled, fluid_dice, fp, train_s, target="cirrus_like", device="cpu"):
    """A record with the fields recipe_delta reads: pooled rows, per-B-scan cases, seconds, machine."""
    cases = [{"method": method, "target_device": target, "seed": seed, "domain": "spectralis", "class": "fluid",
              "case": f"b{i}", "dice": d, "n_ref": 10, "n_pred": 10} for i, d in enumerate(fluid_dice)]
    cases.append({"method": method, "target_device": target, "seed": seed, "domain": "spectralis",
                  "class": "fluid", "case": "empty", "dice": 0.0 if fp else float("nan"), "n_ref": 0,
                  "n_pred": 5 if fp else 0})
    rec = {"format": CELL_FORMAT, "method": method, "target_device": target, "seed": seed, "train_seconds": train_s,
           "machine": {"cpu": "Test CPU", "cpu_capability": "AVX512", "torch_threads": 2, "torch": "2.x",
                       "device": device},
           "rows": [{"domain": "spectralis", "class": "fluid", "dice_pooled": pooled}], "cases": cases}
    (folder / f"{method}__{target}__seed{seed}.json").write_text(json.dumps(rec))


@pytest.fixture
def grids(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for seed, (p_old, p_new) in enumerate([(0.60, 0.70), (0.62, 0.66), (0.58, 0.71)]):
        _cell(old, "supervised", seed, p_old, [0.3, 0.5], fp=seed == 0, train_s=400)
        _cell(new, "supervised", seed, p_new, [0.5, 0.6 + seed / 100], fp=False, train_s=500)
        _cell(old, "segclr_uda_ch_a", seed, p_old + 0.01, [0.4, 0.4], fp=True, train_s=900)
        _cell(new, "segclr_uda", seed, p_new + 0.01, [0.5, 0.5], fp=False, train_s=1300)
    # a GPU cell: scored like the others, its seconds kept out of the CPU training-time column
    _cell(old, "segclr_uda_ch_a", 3, 0.6, [0.4, 0.4], fp=True, train_s=10, device="NVIDIA H200")
    _cell(new, "only_new", 0, 0.5, [0.5], fp=False, train_s=1)
    _cell(new, "supervised", 0, 0.1, [0.1], fp=True, train_s=1, target="topcon_like")  # another target: ignored
    return old, new


def test_rows_side_by_side_with_a_welch_interval(grids, load_script, tmp_path):
    rd = load_script("benchmarks/recipe_delta.py")
    old, new = grids
    out = tmp_path / "delta"
    assert rd.main(["--old", str(old), "--new", str(new), "--map", "segclr_uda=segclr_uda_ch_a",
                    "--domains", "spectralis", "--out", str(out)]) == 0
    entries = json.loads(out.with_suffix(".json").read_text())
    assert [(e["row"], e["old_row"]) for e in entries] == [("segclr_uda", "segclr_uda_ch_a"),
                                                            ("supervised", "supervised")]  # only_new: no partner
    sup = entries[1]
    new_pooled, old_pooled = sup["new"]["pooled"]["values"], sup["old"]["pooled"]["values"]
    assert new_pooled == [0.70, 0.66, 0.71] and old_pooled == [0.60, 0.62, 0.58]
    assert sup["new"]["pooled"]["seeds"] == [0, 1, 2] and sup["new"]["pooled"]["n"] == 3
    assert sup["pooled"]["diff"] == pytest.approx((0.70 + 0.66 + 0.71 - 0.60 - 0.62 - 0.58) / 3)
    ci = ttest_ind(new_pooled, old_pooled, equal_var=False).confidence_interval(0.95)
    assert (sup["pooled"]["low"], sup["pooled"]["high"]) == pytest.approx((ci.low, ci.high))
    assert sup["new"]["fluid_bscans"]["values"] == pytest.approx([0.55, 0.555, 0.56])  # the empty B-scan left out
    assert sup["old"]["false_positive"] == {"mean": pytest.approx(1 / 3), "of": 1, "n_seeds": 3}
    uda = entries[0]
    assert uda["old"]["pooled"]["n"] == 4  # the GPU cell is scored like the others
    assert uda["fluid_bscans"]["diff"] == pytest.approx(0.1)
    assert math.isnan(uda["fluid_bscans"]["low"])  # neither side varies: no interval, not a zero-width one
    text = out.with_suffix(".md").read_text()
    assert "| segclr_uda (old: segclr_uda_ch_a) | spectralis |" in text
    assert "| +0.100 (no interval) | 1.0 of 1 / 0.0 of 1 | 900 (n=3) / 1300 (n=3) |" in text
    assert "Test CPU (AVX512, 2 threads, cpu, torch 2.x): 12 cells" in text  # only_new is not compared
    assert "NVIDIA H200, torch 2.x): 1 cell" in text and "Unpaired" in text
    assert "--map segclr_uda=segclr_uda_ch_a" in text  # the command that regenerates it


def test_nan_seeds_are_left_out_and_named_by_n(grids, load_script):
    rd = load_script("benchmarks/recipe_delta.py")
    old, new = grids
    _cell(new, "supervised", 1, float("nan"), [0.5], fp=False, train_s=500)
    entry = rd.compare(rd.load_grid(new, "cirrus_like"), rd.load_grid(old, "cirrus_like"),
                       [("supervised", "supervised")], ["spectralis"])[0]
    assert entry["new"]["pooled"]["seeds"] == [0, 2] and entry["pooled"]["diff"] == pytest.approx(0.705 - 0.6)


def test_missing_rows_and_empty_grids_are_refused(grids, load_script, tmp_path, capsys):
    rd = load_script("benchmarks/recipe_delta.py")
    old, new = grids
    assert rd.main(["--old", str(old), "--new", str(new), "--methods", "only_new"]) == 2
    assert "'only_new' has no cell records in the old grid" in capsys.readouterr().err
    assert rd.main(["--old", str(old), "--new", str(new), "--domains", "cirrus_like"]) == 2
    assert "no pooled Dice on 'cirrus_like'" in capsys.readouterr().err
    assert rd.main(["--old", str(old), "--new", str(new), "--target", "topcon_like"]) == 2
    assert "no cell records for target 'topcon_like'" in capsys.readouterr().err  # the old grid has none
    assert rd.main(["--old", str(old), "--new", str(new), "--map", "segclr_uda=nope"]) == 2
    assert "--map segclr_uda=nope: no such row" in capsys.readouterr().err
    lone = tmp_path / "lone"
    lone.mkdir()
    _cell(lone, "other_row", 0, 0.5, [0.5], fp=False, train_s=1)
    assert rd.main(["--old", str(lone), "--new", str(new)]) == 2
    assert "share no row" in capsys.readouterr().err
    (lone / "broken__cirrus_like__seed0.json").write_text("{not json")
    assert rd.main(["--old", str(lone), "--new", str(new)]) == 2
    assert "broken__cirrus_like__seed0.json: not a readable cell record" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rd.main(["--old", str(old), "--new", str(new), "--map", "no_equals_sign"])
