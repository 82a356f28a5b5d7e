"""Every mode has its YAML in configs/, and every configs/*.yaml loads."""

from pathlib import Path

import pytest

from segclr.config import MODES, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_loads(path):
    cfg = load_config(path)
    assert cfg.objective.mode in MODES


@pytest.mark.parametrize("mode", MODES)
def test_one_yaml_per_mode(mode):
    path = CONFIGS / f"{mode}.yaml"
    assert path.is_file(), f"configs/{mode}.yaml missing"
    assert load_config(path).objective.mode == mode
