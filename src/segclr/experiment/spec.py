"""Experiment files: load and check a spec, expand it into cells, and key each cell by its config.

A cell is one (method, target device, seed). Its hash covers the whole config and the
pretraining config, except the keys that only change reporting (``COSMETIC_KEYS``) and keys
added later at the value that reproduces the old behaviour (``ADDED_KEYS``), so committed cells
stay valid when the defaults grow. See ``runner`` for the file format and how cells are run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segclr.config import ADDED_KEYS, ConfigError, DataConfig, RunConfig, fill_added, from_dict

SPEC_KEYS = {"name", "description", "seeds", "target_devices", "reference", "base", "methods", "amount",
             "cells", "baseline", "evaluate_on", "compare", "compare_on"}
EVALUATE_ON = ("test", "validation")


@dataclass
class Cell:
    method: str
    target: str
    seed: int
    config: RunConfig
    pretrain: RunConfig | None = None
    hash: str = field(default="")

    @property
    def key(self) -> str:
        return f"{self.method}/{self.target}/seed{self.seed}"

    @property
    def run_key(self) -> str:
        """Folder of this cell under ``OUT/runs``: keyed by the config hash, so a changed cell retrains."""
        return f"{self.key}-{self.hash}"


def _merge(base: dict, over: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in over.items():
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            out[section] = {**out[section], **values}
        else:
            out[section] = values
    return out


def _dotted(key: str, value: Any) -> dict:
    section, name = key.split(".", 1)
    return {section: {name: value}}


def _slug(value: Any) -> str:
    return str(value).replace("+", "").replace("/", "-")


def base_data(spec: dict) -> dict:
    """The ``data`` section of a spec's ``base`` (empty when either is missing)."""
    return (spec.get("base") or {}).get("data") or {}


def load_spec(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown experiment key(s) {sorted(unknown)} (known: {sorted(SPEC_KEYS)})")
    if spec.get("evaluate_on", "test") not in EVALUATE_ON:
        raise ConfigError(f"{path}: evaluate_on must be one of {', '.join(EVALUATE_ON)}, got {spec['evaluate_on']!r}")
    if not spec.get("methods"):
        raise ConfigError(f"{path}: 'methods' is empty")
    compare = spec.get("compare", [])
    if not isinstance(compare, list) or not all(isinstance(p, list) and len(p) == 2
                                                and all(isinstance(m, str) for m in p)
                                                for p in compare):
        raise ConfigError(f"{path}: compare must be a list of [method, other method] pairs, got {compare!r}")
    compare_on = spec.get("compare_on", [])
    if not isinstance(compare_on, list) or not all(isinstance(d, str) for d in compare_on):
        raise ConfigError(f"{path}: compare_on must be a list of domain names (e.g. [spectralis]), got {compare_on!r}")
    scored = base_data(spec).get("eval_domains", DataConfig().eval_domains)
    unscored = [d for d in compare_on if d not in scored]
    if unscored:
        raise ConfigError(f"{path}: compare_on names {unscored}, which the cells are not scored on "
                          f"(base data.eval_domains: {list(scored)})")
    spec.setdefault("name", path.stem)
    return spec


def expand_methods(spec: dict) -> dict[str, dict]:
    """name -> overrides (with an optional 'pretrain' entry), grids expanded into one name each."""
    out: dict[str, dict] = {}
    for name, body in spec["methods"].items():
        body = dict(body or {})
        grid = body.pop("grid", None)
        if "seeds" in body and (not isinstance(body["seeds"], list) or
                                not all(isinstance(v, int) and not isinstance(v, bool) for v in body["seeds"])):
            raise ConfigError(f"method {name}: 'seeds' must be a list of integers, got {body['seeds']!r}")
        if not grid:
            out[name] = body
            continue
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            over = body
            for k, v in zip(keys, combo):
                over = _merge(over, _dotted(k, v))
            out[f"{name}_" + "_".join(_slug(v) for v in combo)] = over
    return out


# Keys that change how a run reports, never what it learns: they stay out of the hash.
COSMETIC_KEYS = {"trainer": ("progress_bar", "log_every_n_steps", "tensorboard", "checkpoint_every_n_steps")}


def stored_config(values: dict) -> RunConfig:
    """A committed cell's stored config as a RunConfig.

    Keys added after the cell was written take the value that reproduces the behaviour of that time
    (``ADDED_KEYS``, kept in the config layer), not today's default: a cell stored before
    post-processing existed ran without it.
    """
    return from_dict(fill_added(values))


def _hashed(cfg: RunConfig) -> dict:
    values = cfg.to_dict()
    for section, keys in COSMETIC_KEYS.items():
        for key in keys:
            values[section].pop(key, None)
    for section, neutral in ADDED_KEYS.items():
        for key, value in neutral.items():
            if values[section].get(key) == value:
                values[section].pop(key)
        if not values[section]:
            values.pop(section)
    return values


def config_hash(cfg: RunConfig, pretrain: RunConfig | None = None) -> str:
    """Hash of everything that can change a cell's result: its config and its pretraining config."""
    blob = json.dumps({"cfg": _hashed(cfg), "pretrain": _hashed(pretrain) if pretrain else None}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def expand_cells(spec: dict, seeds: list[int] | None = None) -> list[Cell]:
    base = spec.get("base") or {}
    override = seeds
    seeds = list(seeds if seeds is not None else spec.get("seeds", [0]))
    cells = []
    # seed-major order: an interrupted study has every method for its first seeds
    methods = expand_methods(spec)
    # a method may name its own seeds (more for the rows the claims rest on); --seeds overrides all
    own = {m: over.get("seeds") for m, over in methods.items()}
    extra = set().union(*(set(v) for v in own.values() if v and override is None)) - set(seeds)
    order = seeds + sorted(extra)
    for seed in order:
        for target in spec.get("target_devices", ["cirrus_like"]):
            for method, over in methods.items():
                over = dict(over)
                if seed not in (own[method] if own[method] and override is None else seeds):
                    continue
                over.pop("seeds", None)
                pre_over = over.pop("pretrain", None)
                common = _merge(base, {"data": {"target_domains": [target]}, "trainer": {"seed": seed}})
                try:
                    pretrain = from_dict(_merge(common, pre_over)) if pre_over is not None else None
                    values = _merge(common, over)
                    if pretrain is not None:
                        values = _merge(values, {"objective": {"init_from": "<pretrain>"}})
                    cfg = from_dict(values)
                except ConfigError as err:
                    raise ConfigError(f"method {method}: {err}") from None
                cell = Cell(method, target, seed, cfg, pretrain)
                cell.hash = config_hash(cfg, pretrain)
                cells.append(cell)
    return cells


def select_methods(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """The cells whose method matches one of the shell-style ``patterns`` (all cells for None)."""
    if not patterns:
        return cells
    chosen = [c for c in cells if any(fnmatch.fnmatchcase(c.method, p) for p in patterns)]
    if not chosen:
        raise ConfigError(f"--methods {' '.join(patterns)}: matches none of {sorted({c.method for c in cells})}")
    return chosen
