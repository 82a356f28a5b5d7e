"""The study on the recipe trains every mode exactly as its shipped configs/<mode>.yaml does.

r2_recipe_cpu.yaml exists so that the study's numbers are the numbers a user of each mode gets. A row
that drifted from its mode's YAML (a pin added to the YAML and not to the grid, or the reverse) would
quietly measure something no one ships.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from segclr.config import MODES, load_config
from segclr.experiment.spec import COSMETIC_KEYS, expand_cells, load_spec

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "configs" / "experiments" / "r2_recipe_cpu.yaml"

# what a row may set on top of its mode's YAML: the study's own variations, and the pretraining hand-over
VARIATIONS = {
    "segclr_uda_con0": {("objective", "lambda_con")},
    "ssl_finetune": {("objective", "init_from")},
    "upper_bound_full_res": {("data", "input_height"), ("data", "crop_size"), ("postprocess", "min_component_px")},
    "segclr_uda_target1": {("data", "target_patients")},
}


def _cells():
    return expand_cells(load_spec(GRID))


def _differences(got: dict, want: dict) -> set[tuple[str, str]]:
    return {(section, key) for section in want for key in want[section]
            if got[section][key] != want[section][key]}


def _expected(mode: str, seed: int, target: str) -> dict:
    values = load_config(ROOT / "configs" / f"{mode}.yaml").to_dict()
    values["trainer"]["seed"] = seed
    values["data"]["target_domains"] = [target]
    return values


def _ignored() -> set[tuple[str, str]]:
    return {(section, key) for section, keys in COSMETIC_KEYS.items() for key in keys}


@pytest.mark.parametrize("cell", _cells(), ids=lambda c: f"{c.method}-seed{c.seed}")
def test_every_row_trains_as_its_mode_yaml(cell):
    got = cell.config.to_dict()
    want = _expected(cell.config.objective.mode, cell.seed, cell.target)
    diff = _differences(got, want) - _ignored() - VARIATIONS.get(cell.method, set())
    assert not diff, {f"{s}.{k}": (got[s][k], want[s][k]) for s, k in sorted(diff)}
    if cell.pretrain is not None:
        pre = _expected(cell.pretrain.objective.mode, cell.seed, cell.target)
        diff = _differences(cell.pretrain.to_dict(), pre) - _ignored()
        assert not diff, sorted(diff)


def test_the_control_differs_only_in_the_contrastive_weight():
    cells = {c.method: c for c in _cells() if c.seed == 0}
    assert cells["segclr_uda_con0"].config.objective.lambda_con == 0.0
    assert cells["segclr_uda"].config.objective.lambda_con > 0.0
    diff = _differences(cells["segclr_uda_con0"].config.to_dict(), cells["segclr_uda"].config.to_dict())
    assert diff == {("objective", "lambda_con")}


def test_every_mode_of_the_method_table_has_a_row():
    cells = _cells()
    modes = {c.config.objective.mode for c in cells} | {c.pretrain.objective.mode for c in cells if c.pretrain}
    assert modes == set(MODES)


def _geometry(cfg) -> tuple[int, int, int]:
    return cfg.data.input_height, cfg.data.crop_size, cfg.postprocess.min_component_px


def test_the_full_resolution_upper_bound_has_the_recipes_geometry():
    cells = {c.method: c.config for c in _cells() if c.seed == 0}
    assert _geometry(cells["upper_bound_full_res"]) == _geometry(cells["segclr_uda"]) == (496, 256, 80)
    assert _geometry(cells["upper_bound"]) == (248, 128, 20)
