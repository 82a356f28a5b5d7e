"""benchmarks/rescore_cells.py and runner.score_model: committed cells scored again, as recorded or what-if."""

from __future__ import annotations

import json
import re

from segclr.experiment.runner import run_experiment


def test_recorded_cells_score_the_same_and_a_larger_minimum_component_removes_all_fluid(tmp_path, capsys,
                                                                                          load_script):
    rescore = load_script("benchmarks/rescore_cells.py")
    spec = load_script("tests/experiment/test_runner.py")._spec(tmp_path,
                                                                 {"sup": {"objective": {"mode": "supervised"}}})
    out = tmp_path / "out"
    run_experiment(spec, out)
    capsys.readouterr()
    argv = ["--cells", str(out / "cells"), "--runs", str(out / "runs")]

    assert rescore.main(argv) == 0
    assert "1 rows the same, 0 different" in capsys.readouterr().out

    # no fluid component of a 64-row B-scan reaches 10^6 pixels: pooled Dice becomes 0, and exit is 0
    table = tmp_path / "rescored.json"
    assert rescore.main(argv + ["--min-component-px", "1000000", "--json", str(table)]) == 0
    text = capsys.readouterr().out
    (row,) = json.loads(table.read_text())["rows"]
    assert row["pooled_Dice"] == 0.0 and row["false_positive_bscans"] == 0 and row["method"] == "sup"
    assert row["empty_bscans"] >= 1 and row["dice_fluid_bscans"] == 0.0  # nothing left to find anything
    pooled_after = float(re.search(r"pooled [0-9.]+ -> ([0-9.]+)", text).group(1))
    assert pooled_after == 0.0
    assert "(minimum fluid component 1000000 px)" in text

    assert rescore.main(argv + ["--methods", "other*"]) == 2  # nothing matched: an error, not a pass
    assert "nothing was re-scored" in capsys.readouterr().err
