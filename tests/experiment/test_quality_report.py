"""benchmarks/quality_report.py: the targets table from cell records, and rows re-scored after the fact."""

import json

import pytest


def _cell(folder, method, seed, pooled, dices, seconds=600.0):
    """A cell record with one test B-scan per entry of ``dices`` (None = an empty reference)."""
    cases = []
    for i, d in enumerate(dices):
        empty = d is None
        cases.append({"domain": "spectralis", "class": "fluid", "case": f"b{i}", "n_ref": 0 if empty else 50,
                      "n_pred": 0 if empty else 40, "dice": "nan" if empty else d})
    fluid = [d for d in dices if d is not None]
    record = {"method": method, "seed": seed, "train_seconds": seconds,
              "config": {"trainer": {"max_steps": 1500}},
              "rows": [{"domain": "spectralis", "class": "fluid", "dice_pooled": pooled,
                        "dice_mean": sum(fluid) / len(fluid)}],
              "cases": cases}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{method}__cirrus_like__seed{seed}.json").write_text(json.dumps(record))


def _rescored(path, method, rows, min_px=80, on="test"):
    path.write_text(json.dumps({"min_component_px": min_px, "on": on, "rows": [
        {"method": method, "seed": seed, "domain": "spectralis", "class": "fluid", "pooled_Dice": pooled,
         "Dice": dice, "dice_fluid_bscans": dice, "false_positive_bscans": fp, "empty_bscans": 2}
        for seed, pooled, dice, fp in rows]}))
    return path


def _run(report, tmp_path, *extra):
    out = tmp_path / "out"
    searches = [] if "--search-curves" in extra else ["--search-cells", str(tmp_path / "none"),
                                                      "--search-curves", str(tmp_path / "none")]
    code = report.main(["--cells", str(tmp_path / "cells"), *searches, "--out", str(out), *extra])
    return code, (out / "QUALITY.md").read_text() if (out / "QUALITY.md").is_file() else ""


def test_targets_are_checked_on_the_rescored_row(tmp_path, load_script):
    report = load_script("benchmarks/quality_report.py")
    cells = tmp_path / "cells"
    for seed in (0, 1):
        _cell(cells, "old", seed, 0.70, [0.5, 0.3, None, None])
        _cell(cells, "full", seed, 0.60, [0.2, 0.2, None, None], seconds=960.0)
    rescored = _rescored(tmp_path / "full_80.json", "full", [(0, 0.76, 0.62, 0), (1, 0.78, 0.66, 1)])
    code, text = _run(report, tmp_path, "--rescored", str(rescored), "--recipe", "full at 80 px")
    assert code == 0
    row = next(line for line in text.splitlines() if line.startswith("| full at 80 px |"))
    # mean over the two seeds, the cells' training time (16.0 min) and steps
    assert "0.770 ± 0.014" in row and "0.640 ± 0.028" in row and "0.5 of 2" in row and row.endswith("| 1500 | 16.0 |")
    assert "## Targets (row `full at 80 px`, 2 seeds)" in text
    assert "| pooled source Dice | >= 0.75 | 0.770 | met | +0.020 |" in text
    assert "| Dice per B-scan (nnU-Net rule) | >= 0.6 | 0.640 | met | +0.040 |" in text
    # the cells' own rows stay, scored as they ran: per B-scan 0.4 for "old", 0.2 for "full"
    assert any(line.startswith("| old | 0, 1 | 0.700 ± 0.000 | 0.400 ± 0.000 |") for line in text.splitlines())
    assert any(line.startswith("| full | 0, 1 | 0.600 ± 0.000 | 0.200 ± 0.000 |") for line in text.splitlines())
    # fluid area, predicted over graded: 2 x 40 px over 2 x 50 px per seed in the cells; a re-scored file written
    # before the column existed records none
    full = next(line for line in text.splitlines() if line.startswith("| full | 0, 1 |"))
    assert "| 0.80 (0.80-0.80) |" in full and "| not recorded |" in row
    _rescored(rescored, "full", [(0, 0.76, 0.62, 0), (1, 0.78, 0.66, 1)])
    data = json.loads(rescored.read_text())
    for r, ratio in zip(data["rows"], (0.9, 1.1)):
        r["area_ratio"] = ratio
    rescored.write_text(json.dumps(data))
    _, text = _run(report, tmp_path, "--rescored", str(rescored), "--recipe", "full at 80 px")
    assert "| 1.00 (0.90-1.10) |" in next(line for line in text.splitlines() if line.startswith("| full at 80 px |"))


def test_an_unknown_recipe_or_an_orphan_rescored_row_is_refused(tmp_path, load_script):
    report = load_script("benchmarks/quality_report.py")
    _cell(tmp_path / "cells", "old", 0, 0.70, [0.5, None])
    with pytest.raises(SystemExit, match="--recipe 'nope': no such row"):
        _run(report, tmp_path, "--rescored", "--recipe", "nope")
    orphan = _rescored(tmp_path / "orphan.json", "gone", [(0, 0.7, 0.5, 0)])
    with pytest.raises(SystemExit, match="rescored row gone seed 0: no cell record"):
        _run(report, tmp_path, "--rescored", str(orphan), "--recipe", "old")
    validation = _rescored(tmp_path / "val.json", "old", [(0, 0.7, 0.5, 0)], on="validation")
    with pytest.raises(SystemExit, match="scored on 'validation': this report is of the test patients"):
        _run(report, tmp_path, "--rescored", str(validation), "--recipe", "old")
    # another --cells folder without --rescored adds nothing (the default file belongs to quality_cpu)
    assert _run(report, tmp_path, "--recipe", "old")[0] == 0
    (tmp_path / "out" / "QUALITY.md").unlink()
    with pytest.raises(SystemExit, match="missing.json: --rescored file not found"):
        _run(report, tmp_path, "--rescored", str(tmp_path / "missing.json"), "--recipe", "old")
    assert not (tmp_path / "out" / "QUALITY.md").exists()


def _curve(folder, method, seed, rows, val_patients, height, seconds, machine=None):
    """A search run: its cell record (training seconds, split) and its copied val_curve.csv."""
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    (folder / "val_curves").mkdir(parents=True, exist_ok=True)
    record = {"method": method, "seed": seed, "train_seconds": seconds,
              "config": {"trainer": {"max_steps": rows[-1][0], "val_every_n_steps": rows[0][0]},
                         "data": {"val_patients": val_patients, "input_height": height}}}
    if machine:
        record["machine"] = machine
    (folder / "cells" / f"{method}__cirrus_like__seed{seed}.json").write_text(json.dumps(record))
    (folder / "val_curves" / f"{method}__cirrus_like__seed{seed}.csv").write_text(
        "step,dice_pooled,dice_per_bscan\n" + "".join(f"{s},{d},0.5\n" for s, d in rows))


def test_time_to_accuracy_has_one_section_per_search(tmp_path, load_script):
    report = load_script("benchmarks/quality_report.py")
    _cell(tmp_path / "cells", "old", 0, 0.70, [0.5, None])
    old, new = tmp_path / "search_old", tmp_path / "search_new"
    # 0.2 s per step: 0.65 first at step 500 (1.7 min), 0.72 never
    _curve(old, "r0", 0, [(250, 0.60), (500, 0.66), (750, 0.70)], [5], 248, 150.0)
    # 0.4 s per step: 0.65 at step 500 (3.3 min), 0.72 at step 1000 (6.7 min)
    _curve(new, "v0", 1, [(500, 0.66), (1000, 0.73), (1500, 0.74)], [4, 5], 496, 600.0,
           machine={"cpu_capability": "AVX512"})
    code, text = _run(report, tmp_path, "--recipe", "old", "--search-cells", str(old / "cells"), str(new / "cells"),
                      "--search-curves", str(old / "val_curves"), str(new / "val_curves"))
    assert code == 0
    assert text.count("## Time to accuracy") == 2
    assert "patients 5, 248 working rows" in text and "patients 4, 5, 496 working rows" in text
    assert "| r0 seed 0 | not recorded | 0.20 | 1.7 min | not reached | 0.700 |" in text
    assert "| v0 seed 1 | AVX512 | 0.40 | 3.3 min | 6.7 min | 0.740 |" in text
    with pytest.raises(SystemExit, match="same number of folders"):
        _run(report, tmp_path, "--recipe", "old", "--search-cells", str(old / "cells"),
             "--search-curves", str(old / "val_curves"), str(new / "val_curves"))
