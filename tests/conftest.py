"""Shared fixtures: tiny configs and a domain bank reused across tests (built once per session), and a
loader for the repository's scripts (benchmarks/, other test files), which are not importable modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from segclr.config import from_dict
from segclr.data.domains import DomainBank

TINY = {
    "data": {"crop_size": 32, "batch_size": 2, "input_height": 64},
    "model": {"base_channels": 4, "depth": 2, "head_hidden": 16, "embedding_dim": 8},
    "trainer": {"max_steps": 2, "progress_bar": False, "log_every_n_steps": 1, "checkpoint_every_n_steps": 1},
}


def tiny_config(**sections):
    values = {k: dict(v) for k, v in TINY.items()}
    for section, updates in sections.items():
        values.setdefault(section, {}).update(updates)
    return from_dict(values)


@pytest.fixture(scope="session")
def bank() -> DomainBank:
    return DomainBank(simulation_seed=0)


@pytest.fixture
def make_config():
    """``make_config(objective={"mode": ...}, ...)`` -> a tiny, fast RunConfig."""
    return tiny_config


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/rescore_cells.py")`` -> that file as a module (path from the repo root)."""
    def load(relpath: str):
        path = ROOT / relpath
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
