"""benchmarks/ensemble_cells.py and inference_search.py's rule: ensembles and thresholds scored on validation."""

from __future__ import annotations

import json

import pytest
import torch

from segclr.experiment.runner import run_experiment


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory, load_script):
    """A two-row validation grid (patient 5 held out), seeds 0-1: cell records and models."""
    tmp = tmp_path_factory.mktemp("search")
    methods = {"base": {"objective": {"mode": "supervised"}},
               "other": {"objective": {"mode": "supervised"}, "trainer": {"lr": 5e-3}}}
    spec = load_script("tests/experiment/test_runner.py")._spec(tmp, methods, evaluate_on="validation", seeds=[0, 1])
    spec.write_text(spec.read_text().replace("eval_domains:", "val_patients: [5]\n    eval_domains:"))
    out = tmp / "out"
    run_experiment(spec, out)
    return tmp, out


def test_ensembles_are_scored_and_paired_with_single_models(tiny_search, load_script, capsys):
    script = load_script("benchmarks/ensemble_cells.py")
    tmp, out = tiny_search
    argv = ["--cells", str(out / "cells"), "--runs", str(out / "runs"), "--method", "other", "--groups", "0,1", "1",
            "--baseline", "base", "--baseline-seeds", "0", "1", "--devices", "cirrus_like", "--out", str(tmp / "ens")]
    assert script.main(argv) == 0
    data = json.loads((tmp / "ens" / "ensembles.json").read_text())
    first, second = data["results"]
    assert first["seeds"] == [0, 1] and second["seeds"] == [1] and first["baseline_seed"] == 0
    assert set(first["ensemble"]) == {"spectralis", "cirrus_like"}
    s = first["ensemble"]["spectralis"]
    assert s["n"] == 11 and 0.0 <= s["pooled"] <= 1.0 and s["empty_bscans"] == 1  # patient 5: 11 B-scans, 1 empty
    records = {json.loads(p.read_text())["seed"]: json.loads(p.read_text())
               for p in (out / "cells").glob("other*.json")}
    assert first["train_seconds"] == pytest.approx(records[0]["train_seconds"] + records[1]["train_seconds"])
    # a one-model "ensemble" is that model: it must reproduce its committed validation score
    row = next(r for r in records[1]["rows"] if r["domain"] == "spectralis" and r["class"] != "background")
    assert second["ensemble"]["spectralis"]["pooled"] == pytest.approx(row["dice_pooled"], abs=1e-9)
    assert second["members"]["1"]["spectralis"]["pooled"] == pytest.approx(row["dice_pooled"])
    text = (tmp / "ens" / "ensembles.md").read_text()
    assert "ensemble_cells.py" in text and "Paired differences" in text

    capsys.readouterr()
    assert script.main(argv[:6] + ["--method", "nope", "--groups", "0", "--baseline", "base",
                                   "--baseline-seeds", "0"]) == 2
    assert "no cell record of nope seed 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(argv[:6] + ["--method", "other", "--groups", "0", "1", "--baseline", "base",
                                "--baseline-seeds", "0"])


def test_inference_search_rule(load_script):
    search = load_script("benchmarks/inference_search.py")
    up = {"a": {"dice_pooled": 0.01, "dice_per_bscan": 0.02}, "b": {"dice_pooled": 0.00, "dice_per_bscan": 0.01}}
    assert search.passes_rule(up)
    assert search.passes_rule(up, {"cirrus_like": -0.005, "topcon_like": 0.0})
    assert not search.passes_rule(up, {"cirrus_like": -0.011})  # the device guard
    one_down = {**up, "b": {"dice_pooled": 0.05, "dice_per_bscan": -0.001}}
    assert not search.passes_rule(one_down)  # Dice per B-scan must rise for every model
    pooled_down = {"a": {"dice_pooled": -0.02, "dice_per_bscan": 0.02},
                   "b": {"dice_pooled": 0.01, "dice_per_bscan": 0.01}}
    assert not search.passes_rule(pooled_down)


def test_thresholded_masks_pick_the_likeliest_fluid_class(load_script):
    search = load_script("benchmarks/inference_search.py")
    probs = torch.tensor([[0.6, 0.3, 0.2], [0.1, 0.5, 0.6], [0.3, 0.2, 0.2]]).reshape(3, 1, 3)  # (C, H, W)
    assert search.masks_at(probs, 0.5).tolist() == [[0, 1, 1]]  # fluid sums 0.4, 0.7, 0.8
    assert search.masks_at(probs, 0.75).tolist() == [[0, 0, 1]]
    assert search.masks_at(probs, 0.35).tolist() == [[2, 1, 1]]  # then the likeliest fluid class


def test_erosion_shrinks_the_fluid_and_keeps_its_classes(load_script):
    import numpy as np

    search = load_script("benchmarks/inference_search.py")
    mask = np.zeros((9, 9), np.uint8)
    mask[2:7, 2:5] = 1
    mask[2:7, 5:7] = 2  # a 5 x 5 pocket of two classes
    assert search.erode_fluid(mask, 0) is mask
    one = search.erode_fluid(mask, 1)
    assert (one > 0).sum() == 9 and one[3:6, 3:6].tolist() == [[1, 1, 2]] * 3  # the 3 x 3 core, classes kept
    assert (search.erode_fluid(mask, 2) > 0).sum() == 1 and search.erode_fluid(mask, 3).sum() == 0
    assert search.setting_key(0.5, False, 0) == "0.5/False/0"
