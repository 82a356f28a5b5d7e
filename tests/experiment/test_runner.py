"""The experiment runner: grid expansion, resume after a kill, aggregation by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from segclr.experiment.report import paired_test, summarize, write_report
from segclr.experiment.runner import expand_cells, load_spec, run_experiment

TINY_BASE = {
    "data": {"crop_size": 32, "batch_size": 2, "input_height": 64, "eval_domains": ["spectralis"]},
    "model": {"base_channels": 4, "depth": 2, "head_hidden": 16, "embedding_dim": 8},
    "trainer": {"max_steps": 2, "progress_bar": False, "checkpoint_every_n_steps": 1},
}


def _spec(tmp_path: Path, methods: dict, **extra) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "seeds": [0], "target_devices": ["cirrus_like"],
                                    "base": TINY_BASE, "methods": methods, **extra}, sort_keys=False))
    return path


def test_grid_expansion_names_and_hashes(tmp_path):
    spec = load_spec(_spec(tmp_path, {
        "sup": {"objective": {"mode": "supervised"}},
        "uda": {"objective": {"mode": "segclr_uda"},
                "grid": {"model.head": ["ch", "pool"], "data.pairs": ["a", "s+a"]}},
        "ssl": {"pretrain": {"objective": {"mode": "ssl_pretrain"}}, "objective": {"mode": "finetune"}},
    }, seeds=[0, 1]))
    cells = expand_cells(spec)
    names = sorted({c.method for c in cells})
    assert names == ["ssl", "sup", "uda_ch_a", "uda_ch_sa", "uda_pool_a", "uda_pool_sa"]
    assert len(cells) == 6 * 2
    by = {(c.method, c.seed): c for c in cells}
    assert by[("uda_pool_sa", 1)].config.model.head == "pool" and by[("uda_pool_sa", 1)].config.data.pairs == "s+a"
    assert by[("ssl", 0)].pretrain.objective.mode == "ssl_pretrain"
    assert by[("sup", 0)].config.trainer.seed == 0 and by[("sup", 1)].config.trainer.seed == 1
    assert len({c.hash for c in cells}) == len(cells)
    assert expand_cells(spec)[0].hash == cells[0].hash  # stable


def test_unknown_experiment_key_is_refused(tmp_path):
    from segclr.config import ConfigError

    with pytest.raises(ConfigError, match="methodz"):
        load_spec(_spec(tmp_path, {"a": {}}, methodz={}))
    with pytest.raises(ConfigError, match="method bad.*objective.mode"):
        expand_cells(load_spec(_spec(tmp_path, {"bad": {"objective": {"mode": "nope"}}})))
    with pytest.raises(ConfigError, match="compare must be a list of"):
        load_spec(_spec(tmp_path, {"a": {}}, compare=["a", "b"]))


def test_compare_pairs_follow_the_baseline_pairs():
    from segclr.experiment.report import comparisons

    spec = {"baseline": "sup", "compare": [["uda", "ub"], ["uda", "missing"], ["uda", "sup"]]}
    assert comparisons(spec, ["sup", "uda", "ub"]) == [("uda", "sup"), ("ub", "sup"), ("uda", "ub")]
    assert comparisons({"reference": "uda"}, ["sup", "uda"]) == [("uda", "sup")]
    assert comparisons({"compare": [["a", "b"]]}, ["a", "b"]) == [("a", "b")]


@pytest.mark.slow
def test_killed_experiment_resumes_without_retraining(tmp_path):
    spec = _spec(tmp_path, {"first": {"objective": {"mode": "supervised"}},
                            "second": {"objective": {"mode": "supervised"}, "trainer": {"lr": 0.002}}})
    out = tmp_path / "out"
    code = ("import sys; from segclr.experiment.runner import run_experiment; "
            f"run_experiment({str(spec)!r}, {str(out)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = {c.method: c for c in expand_cells(load_spec(spec))}
    first = out / "cells" / "first__cirrus_like__seed0.json"  # the committed record of a finished cell
    deadline = time.time() + 180
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists()
    second = out / "cells" / "second__cirrus_like__seed0.json"
    assert not second.exists(), "the experiment finished before it could be killed"
    stamp = first.stat().st_mtime_ns
    bundle = out / "runs" / cells["first"].run_key / "train" / "model.safetensors"
    bundle_stamp = bundle.stat().st_mtime_ns

    run_experiment(spec, out, report_only=True)  # partial report, nothing trained
    assert not second.exists()
    assert "1 of 2 cells finished" in (out / "RESULTS.md").read_text()

    run_experiment(spec, out)
    assert first.stat().st_mtime_ns == stamp and bundle.stat().st_mtime_ns == bundle_stamp  # not retrained
    assert second.exists()
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # header + one (domain, class) row per cell
    assert (out / "RESULTS.md").is_file()


def _fabricated(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results.csv"
    lines = ["method,target_device,seed,config_hash,domain,class,dice_mean,dice_pooled,train_seconds"]
    # method A: target Dice 0.4, 0.5, 0.6 over seeds; method B: 0.3, 0.3, 0.6
    for seed, (a, b) in enumerate([(0.4, 0.3), (0.5, 0.3), (0.6, 0.6)]):
        lines.append(f"A,dev,{seed},h,dev,fluid,{a},{a + 0.1},10")
        lines.append(f"B,dev,{seed},h,dev,fluid,{b},{b},20")
        lines.append(f"A,dev,{seed},h,spectralis,fluid,0.7,0.7,10")
    lines.append("B,dev,0,h,spectralis,fluid,nan,nan,20")
    results.write_text("\n".join(lines) + "\n")
    per_case = tmp_path / "per_case.csv"
    case_lines = ["method,target_device,seed,domain,class,case,dice,n_ref,n_pred"]
    diffs = [0.1, 0.2, 0.3, -0.05, 0.15, 0.25]
    for i, d in enumerate(diffs):
        case_lines.append(f"A,dev,0,dev,fluid,c{i},{0.5 + d},100,90")
        case_lines.append(f"B,dev,0,dev,fluid,c{i},0.5,100,80")
    # empty references: A right on one (NaN), B hallucinating (0); both hallucinating on the other
    case_lines.append("A,dev,0,dev,fluid,empty,nan,0,0")
    case_lines.append("B,dev,0,dev,fluid,empty,0.0,0,12")
    case_lines.append("A,dev,0,dev,fluid,empty2,0.0,0,3")
    case_lines.append("B,dev,0,dev,fluid,empty2,0.0,0,7")
    per_case.write_text("\n".join(case_lines) + "\n")
    return results, per_case


def test_aggregation_matches_hand_computation(tmp_path):
    from segclr.experiment.report import read_csv

    results, per_case = _fabricated(tmp_path)
    s = summarize(read_csv(results))
    a = s[("dev", "A", "dev")]
    assert a["mean"] == pytest.approx(0.5) and a["std"] == pytest.approx(0.1) and a["n"] == 3
    b = s[("dev", "B", "dev")]
    assert b["mean"] == pytest.approx(0.4) and b["std"] == pytest.approx(0.17320508)  # std([.3,.3,.6], ddof=1)
    assert s[("dev", "A", "spectralis")]["std"] == pytest.approx(0.0, abs=1e-12)
    assert ("dev", "B", "spectralis") not in s  # only NaN
    pooled = summarize(read_csv(results), "dice_pooled")
    assert pooled[("dev", "A", "dev")]["mean"] == pytest.approx(0.6)

    t = paired_test(read_csv(per_case), "dev", "A", "B", "dev")
    assert t["n"] == 6  # both empty-reference B-scans are left out for both methods, whatever was predicted
    assert t["mean_diff"] == pytest.approx(sum([0.1, 0.2, 0.3, -0.05, 0.15, 0.25]) / 6)
    assert t["wins"] == 5 and t["losses"] == 1
    # exact two-sided Wilcoxon for n=6 with one negative of the smallest rank: W- = 1 -> p = 4/64
    assert t["p"] == pytest.approx(0.0625)

    report = write_report({"name": "fab", "reference": "A"}, results, per_case, tmp_path / "rep", 3600.0, [0, 1, 2],
                          "segclr experiment fab.yaml")
    text = report.read_text()
    assert "0.500 ± 0.100 (n=3)" in text and "0.400 ± 0.173 (n=3)" in text and "0.0625" in text
    assert "| A | n/a | 1.0 of 2 |" in text and "| B | n/a | 2.0 of 2 |" in text  # false-positive B-scans, per method
    assert "not independent" in text  # the B-scan-level test is labelled secondary
    assert "### Pooled Dice, over seeds" in text  # the seed-level test on pooled Dice too
    assert (tmp_path / "rep" / "bars_dev.png").is_file()


@pytest.mark.slow
def test_changed_cell_retrains_instead_of_reusing_the_old_model(tmp_path):
    """Regression: a rerun with other steps reported the old model under the new hash."""
    from segclr.io.bundle import load_bundle

    out = tmp_path / "out"
    for steps in (1, 3):
        base = {**TINY_BASE, "trainer": {**TINY_BASE["trainer"], "max_steps": steps}}
        path = tmp_path / f"exp{steps}.yaml"
        path.write_text(yaml.safe_dump({"name": "tiny", "seeds": [0], "target_devices": ["cirrus_like"],
                                        "base": base, "methods": {"sup": {"objective": {"mode": "supervised"}}}}))
        (cell,) = expand_cells(load_spec(path))
        run_experiment(path, out)
        result = json.loads((out / "runs" / cell.run_key / "eval.json").read_text())
        assert result["config_hash"] == cell.hash
        train = out / "runs" / cell.run_key / "train"
        record = json.loads((train / "train.json").read_text())
        assert record["steps"] == steps and record["config_hash"] == cell.hash
        _, meta = load_bundle(train / "model.safetensors")
        assert meta["training"]["steps"] == steps  # the model scored is the one this config trained
    assert len(list((out / "runs" / "sup" / "cirrus_like").iterdir())) == 2  # one folder per config


def test_cosmetic_keys_do_not_change_the_hash_but_training_keys_do(tmp_path):
    from segclr.experiment.runner import config_hash
    from segclr.config import from_dict

    base = from_dict(TINY_BASE)
    quiet = from_dict({**TINY_BASE, "trainer": {**TINY_BASE["trainer"], "progress_bar": True, "log_every_n_steps": 7}})
    assert config_hash(base) == config_hash(quiet)
    for key, value in [("max_steps", 3), ("lr", 0.01), ("precision", "bf16-mixed"), ("weight_decay", 0.0)]:
        other = from_dict({**TINY_BASE, "trainer": {**TINY_BASE["trainer"], key: value}})
        assert config_hash(other) != config_hash(base), key
    assert config_hash(base, pretrain=base) != config_hash(base)


def test_a_folder_of_another_config_is_never_reused(tmp_path):
    from segclr.experiment.runner import StaleRunError, _train
    from segclr.config import from_dict

    out = tmp_path / "train"
    out.mkdir()
    (out / "train.json").write_text(json.dumps({"seconds": 1.0, "steps": 3, "config_hash": "old"}))
    with pytest.raises(StaleRunError, match="old"):
        _train(from_dict(TINY_BASE), out, bank=None, run_hash="new")
    (out / "train.json").unlink()
    (out / "model.safetensors").write_bytes(b"x")
    with pytest.raises(StaleRunError, match="no train.json"):
        _train(from_dict(TINY_BASE), out, bank=None, run_hash="new")


def test_cell_files_round_trip(tmp_path):
    from segclr.experiment.cells import cell_is_done, read_cell, write_cell

    rows = [{"method": "m", "dice_mean": 0.5, "dice_pooled": float("nan")}]
    cases = [{"case": "x", "dice": 0.25, "n_ref": 3, "n_pred": 0}]
    path = write_cell(tmp_path / "cells" / "m__t__seed0.json", method="m", target="t", seed=0,
                      config_hash="abc", config={"a": 1}, pretrain=None, train_seconds=12.34, rows=rows, cases=cases)
    record = read_cell(path)
    assert record["cases"] == cases and record["config"] == {"a": 1} and record["train_seconds"] == 12.3
    assert (record["rows"][0]["dice_mean"] == 0.5
            and record["rows"][0]["dice_pooled"] != record["rows"][0]["dice_pooled"])
    assert record["machine"]["torch_threads"] >= 1
    assert cell_is_done(path, "abc") and not cell_is_done(path, "abd")
    path.write_text("{truncated")
    assert read_cell(path) is None and not cell_is_done(path, "abc")


def test_committed_cells_are_skipped_and_a_changed_cell_reruns(tmp_path, monkeypatch):
    """The runner trusts the committed cell files (any clone), and only while the hash matches."""
    from segclr.experiment import runner

    spec = _spec(tmp_path, {"a": {"objective": {"mode": "supervised"}}, "b": {"objective": {"mode": "supervised"},
                                                                            "seeds": [0, 1]}})
    trained = []

    def fake_run_cell(cell, run_dir, bank, progress=False, on="test"):
        trained.append(cell.key)
        case = {"reference_file": "c1", "metrics": {"1": {"Dice": 0.5, "n_ref": 4, "n_pred": 4}}}
        summary = {"mean": {"1": {"name": "fluid", "Dice": 0.5, "pooled_Dice": 0.6}}, "metric_per_case": [case]}
        return {"method": cell.method, "target_device": cell.target, "seed": cell.seed, "config_hash": cell.hash,
                "train_seconds": 1.0, "domains": {"spectralis": summary}}

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    monkeypatch.setattr(runner, "DomainBank", lambda *a, **k: None)
    cells_dir = tmp_path / "committed"
    runner.run_experiment(spec, tmp_path / "out1", cells_dir=cells_dir)
    assert trained == ["a/cirrus_like/seed0", "b/cirrus_like/seed0", "b/cirrus_like/seed1"]  # b has its own seeds
    assert sorted(p.name for p in cells_dir.iterdir()) == [
        "a__cirrus_like__seed0.json", "b__cirrus_like__seed0.json", "b__cirrus_like__seed1.json"]
    trained.clear()
    runner.run_experiment(spec, tmp_path / "another_clone", cells_dir=cells_dir)  # no runs/ folder there
    assert trained == []
    assert len((tmp_path / "another_clone" / "per_case.csv").read_text().splitlines()) == 1 + 3
    data = yaml.safe_load(spec.read_text())
    data["methods"]["a"]["trainer"] = {"lr": 0.005}
    spec.write_text(yaml.safe_dump(data))
    runner.run_experiment(spec, tmp_path / "out1", cells_dir=cells_dir)
    assert trained == ["a/cirrus_like/seed0"]  # only the changed cell
    assert json.loads((cells_dir / "a__cirrus_like__seed0.json").read_text())["config"]["trainer"]["lr"] == 0.005


def test_git_commit_commits_only_the_cell_file(tmp_path):
    from segclr.experiment.cells import git_commit_cell

    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "other.txt").write_text("staged but not mine")
    subprocess.run(["git", "-C", str(repo), "add", "other.txt"], check=True, env=env)
    cell = repo / "cells" / "m__t__seed0.json"
    cell.parent.mkdir()
    cell.write_text("{}")
    monkey_env = os.environ.copy()
    os.environ.update({k: v for k, v in env.items() if k.startswith("GIT_")})
    try:
        assert git_commit_cell(cell, "study x: cell m")
    finally:
        os.environ.clear()
        os.environ.update(monkey_env)
    files = subprocess.run(["git", "-C", str(repo), "show", "--name-only", "--format=", "HEAD"], check=True,
                           capture_output=True, text=True).stdout.split()
    assert files == ["cells/m__t__seed0.json"]


def test_methods_patterns_pick_rows_and_refuse_a_miss(tmp_path):
    from segclr.config import ConfigError
    from segclr.experiment.runner import select_methods

    cells = expand_cells(load_spec(_spec(tmp_path, {"sup": {}, "sup_aug": {},
                                                    "uda": {"objective": {"mode": "segclr_uda"}}})))
    assert [c.method for c in select_methods(cells, ["sup*"])] == ["sup", "sup_aug"]
    assert select_methods(cells, None) == cells
    with pytest.raises(ConfigError, match="matches none"):
        select_methods(cells, ["dann"])


def test_a_cell_killed_between_bundle_and_record_is_recovered(tmp_path):
    import torch

    from segclr.config import from_dict
    from segclr.experiment.runner import StaleRunError, _train
    from segclr.io.bundle import save_bundle

    cfg = from_dict(TINY_BASE)
    out = tmp_path / "train"
    base = {"model": {}, "preprocess": {}, "classes": ["background", "fluid"]}
    save_bundle(out / "model.safetensors", {"w": torch.zeros(1)},
                {**base, "training": {"config": cfg.to_dict(), "seconds": 12.5, "steps": 2}})
    assert _train(cfg, out, bank=None, run_hash="h1") == 12.5  # no retraining: the bundle is this config's
    assert json.loads((out / "train.json").read_text()) == {"seconds": 12.5, "steps": 2, "config_hash": "h1"}
    other = tmp_path / "other"
    save_bundle(other / "model.safetensors", {"w": torch.zeros(1)},
                {**base, "training": {"config": {**cfg.to_dict(), "trainer": {}}, "seconds": 1.0, "steps": 2}})
    with pytest.raises(StaleRunError, match="another config"):
        _train(cfg, other, bank=None, run_hash="h1")
    # a bundle written before data.fluid_crop_by existed sampled per pixel: the pixel cell's, not another's
    older = {**cfg.to_dict(), "data": {k: v for k, v in cfg.to_dict()["data"].items() if k != "fluid_crop_by"}}
    for crop_by, stale in (("pixel", False), ("component", True)):
        run = tmp_path / crop_by
        save_bundle(run / "model.safetensors", {"w": torch.zeros(1)},
                    {**base, "training": {"config": older, "seconds": 3.0, "steps": 2}})
        want = from_dict({**TINY_BASE, "data": {**TINY_BASE.get("data", {}), "fluid_crop_by": crop_by}})
        if stale:
            with pytest.raises(StaleRunError, match="another config"):
                _train(want, run, bank=None, run_hash="h2")
        else:
            assert _train(want, run, bank=None, run_hash="h2") == 3.0


def test_validation_studies_score_only_the_held_out_source_patients(tmp_path, bank):
    from segclr.config import ConfigError
    from segclr.experiment.runner import evaluate_validation

    with pytest.raises(ConfigError, match="evaluate_on must be one of"):
        load_spec(_spec(tmp_path, {"a": {}}, evaluate_on="tests"))
    spec = load_spec(_spec(tmp_path, {"a": {"objective": {"mode": "supervised"}, "data": {"val_patients": [4]}}},
                           evaluate_on="validation"))
    cfg = expand_cells(spec)[0].config

    class Everything:  # marks every pixel as fluid, and records what it was shown
        classes = ["background", "fluid"]
        shapes: list = []

        def __call__(self, image, spacing=None):
            self.shapes.append(image.shape)
            return np.ones(image.shape, dtype=np.uint8)

    out = evaluate_validation(Everything(), bank, cfg)
    names = [c["reference_file"] for c in out["spectralis"]["metric_per_case"]]
    patient4 = [v for v in bank.volumes("spectralis", "source_train") if v.patient == 4][0]
    assert names == [f"spectralis/{n}" for n in patient4.names] and len(names) == 11
    with pytest.raises(ConfigError, match="val_patients"):
        evaluate_validation(Everything(), bank, expand_cells(load_spec(_spec(tmp_path, {"b": {}})))[0].config)


def test_report_names_the_machines_that_trained_the_cells():
    from segclr.experiment.cells import describe_machines

    epyc = {"machine": "x86_64", "cpu": "AMD EPYC", "cpu_capability": "AVX2", "torch_threads": 2, "device": "cpu",
            "torch": "2.13.0+cpu"}
    old = {"machine": "x86_64", "torch_threads": 2}
    text = describe_machines([{"machine": epyc}, {"machine": epyc}, {"machine": old}])
    assert text == ("AMD EPYC (AVX2, 2 threads, cpu, torch 2.13.0+cpu): 2 cells; "
                    "x86_64 (CPU model not recorded, 2 threads): 1 cell")
    assert describe_machines([]) == "none"


def test_eval_device_follows_the_training_accelerator(monkeypatch):
    import torch

    from segclr.config import from_dict
    from segclr.experiment.runner import eval_device

    auto, cpu = from_dict({}), from_dict({"trainer": {"accelerator": "cpu"}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert (eval_device(auto), eval_device(cpu)) == ("cuda", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert eval_device(auto) == "cpu"
