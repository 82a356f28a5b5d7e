"""The rule that picks the post-processing on validation (benchmarks/postprocess_search.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "postprocess_search", Path(__file__).resolve().parents[2] / "benchmarks" / "postprocess_search.py")
search = importlib.util.module_from_spec(spec)
spec.loader.exec_module(search)


def _rows(values):
    return [{"min_component_px": k, "retina_only": r, "dice_fluid_bscans": d, "false_positive_bscans": f}
            for k, r, d, f in values]


def test_retina_mask_kept_when_it_costs_little_and_the_largest_harmless_size_wins():
    rows = _rows([(0, False, 0.640, 1), (10, False, 0.6395, 0), (0, True, 0.639, 1), (10, True, 0.6385, 0),
                  (20, True, 0.637, 0)])
    assert search.choose(rows) == rows[3]  # 0.6385 >= 0.639 - 0.001; 20 px costs 0.002


def test_retina_mask_dropped_when_it_costs_more_than_the_tolerance():
    rows = _rows([(0, False, 0.640, 1), (10, False, 0.6395, 0), (0, True, 0.630, 1), (10, True, 0.630, 0)])
    assert search.choose(rows) == rows[1]


def test_scores_count_false_positive_bscans_and_leave_them_out_of_the_fluid_mean():
    import numpy as np

    ref = [np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)]
    ref[1][:2, :2] = 1                                  # 4 px of fluid
    pred = [np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)]
    pred[0][0, 0] = 1                                   # a false positive on the empty B-scan
    pred[1][:2, :1] = 1                                 # 2 of the 4 px found
    out = search.score(pred, ref)
    assert out["false_positive_bscans"] == 1 and out["empty_bscans"] == 1
    assert out["dice_fluid_bscans"] == 2 * 2 / (2 * 2 + 0 + 2)
    assert out["dice_pooled"] == 2 * 2 / (2 * 2 + 1 + 2)


def test_methods_that_match_no_bundle_stop_with_the_runs_dir_and_patterns_named(tmp_path):
    import pytest

    train = tmp_path / "q2" / "cirrus_like" / "seed0-abc" / "train"
    train.mkdir(parents=True)
    (train / "model.safetensors").write_bytes(b"")  # never opened: the filter leaves nothing
    with pytest.raises(SystemExit, match=r"no model bundles of q7\* xyz"):
        search.main(["--runs", str(tmp_path), "--methods", "q7*", "xyz", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
