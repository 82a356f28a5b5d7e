"""benchmarks/validation_devices.py: a validation search's models on the validation patients rendered as devices."""

from __future__ import annotations

import json

import pytest

from segclr.experiment.runner import run_experiment


def test_rows_are_scored_per_device_and_paired_with_the_baseline(tmp_path, capsys, load_script):
    script = load_script("benchmarks/validation_devices.py")
    methods = {"base": {"objective": {"mode": "supervised"}},
               "other": {"objective": {"mode": "supervised"}, "trainer": {"lr": 5e-3}}}
    spec = load_script("tests/experiment/test_runner.py")._spec(tmp_path, methods, evaluate_on="validation")
    text = spec.read_text().replace("eval_domains:", "val_patients: [5]\n    eval_domains:")
    spec.write_text(text)
    out = tmp_path / "out"
    run_experiment(spec, out)
    capsys.readouterr()
    argv = ["--cells", str(out / "cells"), "--runs", str(out / "runs"), "--methods", "*", "--baseline", "base",
            "--devices", "cirrus_like", "--out", str(tmp_path / "report")]

    assert script.main(argv) == 0
    data = json.loads((tmp_path / "report" / "validation_devices.json").read_text())
    scores = data["scores"]
    assert set(scores) == {"base", "other"}
    cell = scores["other"]["0"]["cirrus_like"]
    assert cell["n"] == 11 and 0.0 <= cell["pooled"] <= 1.0  # patient 5: 11 B-scans
    verdict = data["verdicts"]["other"]["cirrus_like"]
    assert verdict["pooled"] == pytest.approx([cell["pooled"] - scores["base"]["0"]["cirrus_like"]["pooled"]])
    assert verdict["guard"] == (verdict["mean_pooled"] >= -0.010)
    assert "validation_devices.py" in (tmp_path / "report" / "validation_devices.md").read_text()

    assert script.main(argv[:-2] + ["--baseline", "missing"]) == 2  # argparse keeps the last --baseline
    assert "no cell of the baseline 'missing'" in capsys.readouterr().err
    assert script.main(["--cells", str(out / "cells"), "--runs", str(tmp_path), "--methods", "*",
                        "--baseline", "base", "--devices", "cirrus_like"]) == 2
    assert "no model.safetensors" in capsys.readouterr().err
