"""benchmarks/cv_pool.py: a cross-validated search's folds pooled into one out-of-fold score per seed."""

from __future__ import annotations

import json

import pytest


def _cell(folder, method, seed, val_patients, cases):
    """A cell record with the fields cv_pool reads: config's held-out patients and per-B-scan (dice, n_ref, n_pred)."""
    rec = {"method": method, "seed": seed, "config": {"data": {"val_patients": val_patients}},
           "cases": [{"domain": "spectralis", "class": "fluid", "case": name, "dice": d, "n_ref": r, "n_pred": p}
                     for name, d, r, p in cases]}
    (folder / f"{method}__cirrus_like__seed{seed}.json").write_text(json.dumps(rec))


def _dice(tp, n_ref, n_pred):
    return float("nan") if n_ref + n_pred == 0 else 2 * tp / (n_ref + n_pred)


@pytest.fixture
def cells(tmp_path):
    folder = tmp_path / "cells"
    folder.mkdir()
    for seed, bump in ((0, 0), (1, 2)):
        # fold A holds out patient 1: a found pocket (tp 8 of 10, 4 extra) and a fluid-free B-scan left empty
        _cell(folder, "base_a", seed, [1], [("p1_0", _dice(8, 10, 12), 10, 12), ("p1_1", float("nan"), 0, 0)])
        # fold B holds out patient 2: a small pocket found in part (tp 2 of 6) and a false positive
        _cell(folder, "base_b", seed, [2], [("p2_0", _dice(2, 6, 3), 6, 3), ("p2_1", 0.0, 0, 5)])
        _cell(folder, "lever_a", seed, [1], [("p1_0", _dice(9, 10, 11), 10, 11), ("p1_1", float("nan"), 0, 0)])
        _cell(folder, "lever_b", seed, [2], [("p2_0", _dice(3 + bump, 6, 6), 6, 6), ("p2_1", 0.0, 0, 2)])
        _cell(folder, "odd_b", seed, [1, 2], [("p2_0", 0.5, 6, 6)])
    return folder


def test_folds_pool_into_one_out_of_fold_score(cells, load_script, tmp_path):
    cv = load_script("benchmarks/cv_pool.py")
    pooled, per_fold, held = cv.pool_row(cv.load_cells(cells), ["base_a", "base_b"], 0, "spectralis", "fluid")
    assert held == [[1], [2]] and pooled["n"] == 4
    assert pooled["pooled"] == pytest.approx(2 * (8 + 2) / ((10 + 6) + (12 + 3 + 5)))  # pixels summed over folds
    assert pooled["per_bscan"] == pytest.approx((16 / 22 + 4 / 9 + 0.0) / 3)  # the both-empty B-scan left out
    assert pooled["dice_fluid_bscans"] == pytest.approx((16 / 22 + 4 / 9) / 2)
    assert (pooled["false_positive_bscans"], pooled["empty_bscans"]) == (1, 2)
    assert pooled["area_ratio"] == pytest.approx(20 / 16)
    assert per_fold["base_a"]["pooled"] == pytest.approx(16 / 22)

    out = tmp_path / "cv.md"
    assert cv.main(["--cells", str(cells), "--folds", "base_a", "base_b", "--lever", "lever_a", "lever_b",
                    "--seeds", "0", "1", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    lever0 = data["seeds"]["0"]["lever"]["pooled"]
    assert lever0["pooled"] == pytest.approx(2 * (9 + 3) / (16 + 11 + 6 + 2))
    verdict = data["verdict"]
    assert verdict["per_bscan"][0] == pytest.approx(lever0["per_bscan"]
                                                    - data["seeds"]["0"]["baseline"]["pooled"]["per_bscan"])
    assert verdict["kept"] == (sum(verdict["pooled"]) > 0 and sum(verdict["per_bscan"]) > 0
                               and all(d > 0 for d in verdict["per_bscan"]))
    assert verdict["kept"]  # the lever finds more of both pockets and marks less of the empty B-scan
    assert "Verdict: **kept**" in out.read_text() and "cv_pool.py" in out.read_text()


def test_folds_that_cannot_be_pooled_are_refused(cells, load_script, capsys):
    cv = load_script("benchmarks/cv_pool.py")
    base = ["--cells", str(cells), "--seeds", "0"]
    assert cv.main(base + ["--folds", "base_a", "odd_b"]) == 2
    assert "overlap" in capsys.readouterr().err
    assert cv.main(base + ["--folds", "base_a", "base_b", "--lever", "lever_a", "odd_b"]) == 2
    assert "overlap" in capsys.readouterr().err
    assert cv.main(base + ["--folds", "base_a", "missing"]) == 2
    assert "no cell record of missing seed 0" in capsys.readouterr().err
    assert cv.main(base + ["--folds", "base_a", "base_b", "--lever", "lever_b", "lever_a"]) == 2
    assert "the lever's folds hold out [[2], [1]]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cv.main(base + ["--folds", "base_a", "base_b", "--lever", "lever_a"])
