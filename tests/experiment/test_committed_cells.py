"""Every committed study cell is still a finished cell of its grid.

A grid skips a cell whose record carries the hash of the cell's config today. Changing a default
without pinning the old value in the grids would give every cell a new hash: the docs would cite
cells that the grid no longer recognises, and a resumed study would silently train them all again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segclr.experiment.cells import cell_path
from segclr.experiment.runner import expand_cells, load_spec

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"

# grid file -> the folder its cells are committed to (--report-dir), as the grids' headers say
CELLS_OF = {
    "bf16_cpu": "bf16_cpu",
    "geometry_cpu": "geometry_cpu",
    "quality_cpu": "quality_cpu",
    "quality_gpu": "quality_gpu",
    "quality_search_cpu": "quality_search",
    "quality_search2_cpu": "quality_search2",
    "quality_search_gpu": "quality_search_gpu",
    "r1_appearance_cpu": "r1_appearance_cpu",
    "r2_realistic_cpu": "r2_realistic_cpu",
    "r2_recipe_cpu": "r2_recipe_cpu",
    "recipe_levers_cpu": "recipe_levers",
    "recipe_modes_cpu": "recipe_modes",
    "recipe_svdna_cpu": "recipe_svdna",
}


def test_every_committed_cells_folder_belongs_to_a_grid():
    folders = {p.parent.name for p in RESULTS.glob("*/cells")}
    assert folders, "no committed cells found"
    assert folders <= set(CELLS_OF.values()), sorted(folders - set(CELLS_OF.values()))


def _seed_of(path: Path) -> int:
    return int(path.stem.rsplit("__seed", 1)[1])


@pytest.mark.parametrize("grid", sorted(CELLS_OF))
def test_committed_cells_keep_their_grid_hash(grid):
    cells_dir = RESULTS / CELLS_OF[grid] / "cells"
    files = sorted(cells_dir.glob("*.json"))
    assert files, f"no committed cell of {grid} in {cells_dir}"
    # the seeds on disk, not only the grid's own: extra seeds were trained with --seeds
    spec = load_spec(ROOT / "configs" / "experiments" / f"{grid}.yaml")
    expected = {cell_path(cells_dir, c.method, c.target, c.seed): c.hash
                for c in expand_cells(spec, seeds=sorted({_seed_of(p) for p in files}))}
    for path in files:
        assert path in expected, f"{path.name}: no such cell in {grid}.yaml (method renamed or removed?)"
        stored = json.loads(path.read_text())["config_hash"]
        assert stored == expected[path], f"{path.name}: committed with {stored}, the grid now gives {expected[path]}"
