"""The study runner's spec reading, grid expansion and hashing at their edges (found by mutation testing).

No training: ``load_spec``, ``expand_methods``, ``expand_cells``, ``config_hash`` and their helpers.
The most important check is the last one: every committed cell's recorded hash is recomputed from the
config stored in it, so any change to the hash function (or a new config key whose default changes
what a committed cell ran) is caught before it silently retrains, or wrongly reuses, a whole study.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from segclr.config import ConfigError, RunConfig, from_dict
from segclr.experiment import spec as runner
from segclr.experiment.spec import (_dotted, _hashed, _merge, _slug, config_hash, expand_cells, expand_methods,
                                   load_spec)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(ROOT.glob("docs/results/*/cells/*.json"))


def _write(tmp_path: Path, spec, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec) if not isinstance(spec, str) else spec)
    return path


# ----------------------------------------------------------------------------------------- load_spec
def test_load_spec_messages_name_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{missing}: experiment file not found$"):
        load_spec(missing)
    with pytest.raises(ConfigError, match=r"^.*list\.yaml: top level must be a mapping$"):
        load_spec(_write(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(ConfigError, match=r"^.*empty\.yaml: 'methods' is empty$"):
        load_spec(_write(tmp_path, {"methods": {}}, "empty.yaml"))
    with pytest.raises(ConfigError, match=r"evaluate_on must be one of test, validation, got 'tests'$"):
        load_spec(_write(tmp_path, {"methods": {"a": {}}, "evaluate_on": "tests"}))


def test_load_spec_names_the_study_after_the_file_unless_named(tmp_path):
    assert load_spec(_write(tmp_path, {"methods": {"a": {}}}, "my_study.yaml"))["name"] == "my_study"
    assert load_spec(_write(tmp_path, {"name": "given", "methods": {"a": {}}}, "x.yaml"))["name"] == "given"


# ------------------------------------------------------------------------------------------ helpers
def test_merge_overrides_by_section_and_never_aliases_the_base():
    base = {"trainer": {"max_steps": 10, "seed": 0}, "name": "x"}
    out = _merge(base, {"trainer": {"seed": 3}, "model": {"depth": 2}, "name": "y"})
    assert out == {"trainer": {"max_steps": 10, "seed": 3}, "model": {"depth": 2}, "name": "y"}
    kept = _merge(base, {})
    assert kept == base
    kept["trainer"]["max_steps"] = 99  # the merged copy is independent: a cell's edits never reach the base
    assert base == {"trainer": {"max_steps": 10, "seed": 0}, "name": "x"}


def test_dotted_splits_at_the_first_dot_and_slug_makes_names():
    assert _dotted("model.head", "ch") == {"model": {"head": "ch"}}
    assert _dotted("data.a.b", 1) == {"data": {"a.b": 1}}
    assert _slug("s+a") == "sa"
    assert _slug("runs/a+b/c") == "runs-ab-c"
    assert _slug(0.5) == "0.5"


# ----------------------------------------------------------------------------------- expand_methods
@pytest.mark.parametrize("seeds", ["3", 3, [0, "1"], [0, 1.0], [True], [0, False]])
def test_method_seeds_must_be_a_list_of_integers(seeds):
    message = f"method m: 'seeds' must be a list of integers, got {seeds!r}"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        expand_methods({"methods": {"m": {"seeds": seeds}}})


def test_method_seeds_that_are_integers_are_kept():
    assert expand_methods({"methods": {"m": {"seeds": [0, 4]}, "n": None}}) == {"m": {"seeds": [0, 4]}, "n": {}}


# ------------------------------------------------------------------------------------- expand_cells
def test_defaults_are_seed_0_on_cirrus_like():
    cells = expand_cells({"methods": {"a": {}}})
    assert [(c.method, c.target, c.seed) for c in cells] == [("a", "cirrus_like", 0)]
    assert cells[0].config.data.target_domains == ["cirrus_like"] and cells[0].config.trainer.seed == 0


def test_seeds_argument_overrides_a_methods_own_seeds():
    spec = {"seeds": [0], "target_devices": ["t"], "methods": {"a": {}, "b": {"seeds": [0, 1, 2]}}}
    assert [(c.method, c.seed) for c in expand_cells(spec)] == [("a", 0), ("b", 0), ("b", 1), ("b", 2)]
    assert [(c.method, c.seed) for c in expand_cells(spec, seeds=[5])] == [("a", 5), ("b", 5)]


def test_two_stage_cell_finetunes_from_the_pretrain_placeholder():
    spec = {"methods": {"ft": {"pretrain": {"objective": {"mode": "ssl_pretrain"}},
                               "objective": {"mode": "finetune"}}}}
    (cell,) = expand_cells(spec)
    # run_cell replaces the placeholder by the pretraining run's bundle; the hash (and so every
    # committed two-stage cell) depends on this exact placeholder, never on a run folder
    assert cell.config.objective.init_from == "<pretrain>"
    assert cell.pretrain.objective.mode == "ssl_pretrain" and cell.pretrain.objective.init_from == ""


# ----------------------------------------------------------------------------------------- hashing
def test_keys_added_at_their_neutral_value_stay_out_of_the_hash():
    values = _hashed(runner.stored_config({}))  # every added key at its neutral value
    for section, neutral in runner.ADDED_KEYS.items():
        for key in neutral:
            assert key not in values.get(section, {}), f"{section}.{key}"
    assert "postprocess" not in values  # a section left empty is dropped
    for section, keys in runner.COSMETIC_KEYS.items():
        for key in keys:
            assert key not in values[section]
    changed = _hashed(from_dict({"trainer": {"schedule": "poly", "warmup_steps": 5}}))
    assert changed["trainer"]["schedule"] == "poly" and changed["trainer"]["warmup_steps"] == 5
    assert "val_every_n_steps" not in changed["trainer"]
    # today's post-processing defaults are not the neutral values, so they are hashed
    assert _hashed(RunConfig())["postprocess"] == {"min_component_px": 80, "retina_only": True}


def test_there_are_committed_cells_to_check():
    assert COMMITTED, "no committed cell files under docs/results/*/cells"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_committed_cells_keep_their_hash(path):
    record = json.loads(path.read_text())
    cfg = runner.stored_config(record["config"])
    pretrain = runner.stored_config(record["pretrain"]) if record.get("pretrain") else None
    assert config_hash(cfg, pretrain) == record["config_hash"], (
        f"{path}: the hash of its stored config changed; every committed cell would retrain "
        f"(a new config key needs an entry in config/history.py ADDED_KEYS)")
