"""The study files in configs/experiments expand, and their cells' config hashes tell cells apart.

No training here: only ``expand_cells`` and ``config_hash``. The hash decides whether a finished
cell is reused, so it must change with everything that can change a result (every config field
except the cosmetic ones, and the pretraining config) and must not change from run to run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segclr.config import RunConfig, from_dict
from segclr.experiment import runner
from segclr.experiment.runner import config_hash, expand_cells, load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))
# Keys left out of the hash on purpose (reporting only); absent in older runners.
COSMETIC = getattr(runner, "COSMETIC_KEYS", {})


def test_there_are_study_files():
    assert {p.name for p in SPECS} >= {"paper.yaml", "paper_cpu.yaml"}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_study_file_expands_to_cells_with_distinct_hashes(path):
    spec = load_spec(path)
    cells = expand_cells(spec)
    seeds, targets = spec["seeds"], spec["target_devices"]
    methods = {c.method for c in cells}
    # a method may carry its own seeds (grid methods are named <method>_<combo>)
    own = {k: (body or {}).get("seeds") for k, body in spec["methods"].items()}
    grids = [k for k, body in spec["methods"].items() if (body or {}).get("grid")]

    def seeds_of(method: str) -> list[int]:
        origin = method if method in own else next(k for k in grids if method.startswith(k + "_"))
        return own[origin] or seeds

    assert len(cells) == sum(len(seeds_of(m)) for m in methods) * len(targets)
    assert all(c.seed in seeds_of(c.method) for c in cells)
    assert len({c.key for c in cells}) == len(cells)
    hashes = [c.hash for c in cells]
    dupes = {h: [c.key for c in cells if c.hash == h] for h in hashes if hashes.count(h) > 1}
    assert not dupes, f"cells share a config hash: {dupes}"
    for c in cells:
        assert c.hash == config_hash(c.config, c.pretrain)
        assert len(c.hash) == 10 and int(c.hash, 16) >= 0
        assert c.config.trainer.seed == c.seed and c.config.data.target_domains == [c.target]
        if c.pretrain is not None:
            assert c.pretrain.trainer.seed == c.seed and c.config.objective.mode == "finetune"
    # the reference method and the amount-of-target-data methods exist
    assert (spec.get("reference") or spec.get("baseline")) in methods
    assert set(spec.get("amount", {}).values()) <= methods


def test_paper_study_has_two_finetunes_that_differ_only_in_pretraining():
    cells = expand_cells(load_spec(ROOT / "configs" / "experiments" / "paper.yaml"), seeds=[0])
    by = {(c.method, c.target): c for c in cells}
    a, b = by[("ssl_finetune", "cirrus_like")], by[("ssl_simsiam_finetune", "cirrus_like")]
    assert a.config == b.config and a.pretrain != b.pretrain
    assert a.hash != b.hash


def test_hash_is_stable_across_processes_and_calls():
    # a salted or process-dependent hash would make every rerun retrain everything
    cfg = from_dict({})
    assert config_hash(cfg) == config_hash(from_dict({}))
    assert config_hash(cfg) == config_hash(cfg, None)
    code = ("from segclr.config import from_dict; from segclr.experiment.runner import config_hash; "
            "print(config_hash(from_dict({})), config_hash(from_dict({}), from_dict({})))")
    # the child imports the same segclr as this process (the mutated copy, under mutation testing)
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [config_hash(cfg), config_hash(cfg, cfg)]


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return (_changed(value[0]), *value[1:])
    if isinstance(value, list):
        return [*value, "extra"]
    raise TypeError(type(value))


def _every_field():
    cfg = RunConfig()
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            yield section.name, f.name


@pytest.mark.parametrize("section, key", list(_every_field()), ids=lambda x: x)
def test_hash_changes_with_every_field_and_with_pretraining(section, key):
    base, pre = RunConfig(), RunConfig()
    changed = RunConfig()
    sub = getattr(changed, section)
    setattr(sub, key, _changed(getattr(sub, key)))
    cosmetic = key in COSMETIC.get(section, ())
    assert (config_hash(changed) == config_hash(base)) == cosmetic, f"{section}.{key}"
    # the same change in the pretraining config changes the cell's hash too
    assert (config_hash(base, changed) == config_hash(base, pre)) == cosmetic, f"pretrain {section}.{key}"


def test_hash_tells_pretraining_from_none():
    cfg, pre = RunConfig(), RunConfig()
    assert config_hash(cfg, pre) != config_hash(cfg)
    # which config is the cell and which its pretraining matters
    other = from_dict({"trainer": {"max_steps": 7}})
    assert config_hash(cfg, other) != config_hash(other, cfg)


def test_seeds_argument_overrides_the_spec():
    spec = load_spec(ROOT / "configs" / "experiments" / "paper_cpu.yaml")
    cells = expand_cells(spec, seeds=[5])
    assert {c.seed for c in cells} == {5}
    # seed-major order: all methods of the first seed come first
    cells = expand_cells(spec, seeds=[1, 0])
    n = len(cells) // 2
    assert {c.seed for c in cells[:n]} == {1} and {c.seed for c in cells[n:]} == {0}
    # a different seed is a different cell
    assert not {c.hash for c in cells[:n]} & {c.hash for c in cells[n:]}


def test_a_cell_is_finished_only_with_its_own_hash(tmp_path):
    from segclr.experiment.cells import CELL_FORMAT

    cell = expand_cells(load_spec(ROOT / "configs" / "experiments" / "paper_cpu.yaml"), seeds=[0])[0]
    cells = tmp_path / "cells"
    record = runner.cell_file(cells, cell)
    assert record.name == f"{cell.method}__{cell.target}__seed{cell.seed}.json"
    assert not runner.is_done(cells, cell)                          # nothing there
    cells.mkdir()
    record.write_text("{not json")
    assert not runner.is_done(cells, cell)                          # a torn file
    record.write_text(json.dumps({"format": CELL_FORMAT, "config_hash": "0" * 10}))
    assert not runner.is_done(cells, cell)                          # another config's result
    record.write_text(json.dumps({"format": CELL_FORMAT, "method": cell.method}))
    assert not runner.is_done(cells, cell)                          # no hash recorded
    record.write_text(json.dumps({"format": CELL_FORMAT + 1, "config_hash": cell.hash}))
    assert not runner.is_done(cells, cell)                          # a record of another format
    record.write_text(json.dumps({"format": CELL_FORMAT, "config_hash": cell.hash}))
    assert runner.is_done(cells, cell)
    # the same record no longer counts once the cell's config changes
    changed = dataclasses.replace(cell, config=from_dict({"trainer": {"max_steps": 1}}))
    changed.hash = config_hash(changed.config, changed.pretrain)
    assert not runner.is_done(cells, changed)
