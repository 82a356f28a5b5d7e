"""Loading a :class:`~segclr.config.schema.RunConfig`: from YAML, from a dict, and from
``--set section.key=value`` overrides, with every value checked against the field's type and
every choice against its list. Errors are :class:`ConfigError` naming the key (and the file or
the ``--set`` that caused them), with a "did you mean" for near misses."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from segclr.config.history import fill_added
from segclr.config.schema import (BN_STATS, CONTRASTIVE_LOSSES, FLUID_CROP_BY, GEOMETRIES, HEADS, MODES, NORMS, PAIRS,
                                  SCHEDULES, STEMS, SUP_LOSSES, SVDNA_MODES, ConfigError, RunConfig)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field annotation, converting lists to tuples where declared."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if annotation in (int, bool, str):
        ok = isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"config key '{key}': expected {annotation.__name__}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{key}': expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': value {value!r} has the wrong type")
    raise ConfigError(f"config key '{key}': unsupported annotation {annotation!r}")


def _update(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key '{full}'{_did_you_mean(key, names, prefix)}"
                              f" (known in '{prefix.rstrip('.') or '<root>'}': {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _update(current, value, prefix=f"{full}.")
        else:
            setattr(obj, key, _coerce(full, value, hints[key]))


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}': {value!r} is not one of {', '.join(choices)}")


def validate(cfg: RunConfig) -> RunConfig:
    """Check values that types alone cannot; returns ``cfg`` for chaining."""
    _check_choice("objective.mode", cfg.objective.mode, MODES)
    _check_choice("objective.contrastive_loss", cfg.objective.contrastive_loss, CONTRASTIVE_LOSSES)
    _check_choice("objective.sup_loss", cfg.objective.sup_loss, SUP_LOSSES)
    _check_choice("model.head", cfg.model.head, HEADS)
    _check_choice("model.norm", cfg.model.norm, NORMS)
    _check_choice("model.stem", cfg.model.stem, STEMS)
    _check_choice("data.pairs", cfg.data.pairs, PAIRS)
    _check_choice("objective.bn_stats", cfg.objective.bn_stats, BN_STATS)
    _check_choice("data.geometry", cfg.data.geometry, GEOMETRIES)
    _check_choice("data.fluid_crop_by", cfg.data.fluid_crop_by, FLUID_CROP_BY)
    _check_choice("trainer.schedule", cfg.trainer.schedule, SCHEDULES)
    for key, value in (("trainer.warmup_steps", cfg.trainer.warmup_steps),
                       ("trainer.val_every_n_steps", cfg.trainer.val_every_n_steps),
                       ("postprocess.min_component_px", cfg.postprocess.min_component_px)):
        if value < 0:
            raise ConfigError(f"config key '{key}': must be >= 0, got {value}")
    if 0 < cfg.trainer.max_steps <= cfg.trainer.warmup_steps:
        raise ConfigError(f"config key 'trainer.warmup_steps': {cfg.trainer.warmup_steps} must be below "
                          f"trainer.max_steps ({cfg.trainer.max_steps})")
    if not 0.0 <= cfg.augment.overlay_prob <= 1.0:
        raise ConfigError(f"config key 'augment.overlay_prob': must lie in [0, 1], got {cfg.augment.overlay_prob}")
    if cfg.trainer.val_every_n_steps and not cfg.data.val_patients:
        raise ConfigError("config key 'trainer.val_every_n_steps': needs a validation split (data.val_patients)")
    t = cfg.data.target_spacing_um
    if t and (len(t) != 2 or not all(0 < v <= 1000 for v in t)):
        raise ConfigError(f"config key 'data.target_spacing_um': [] or two spacings in um (0 < s <= 1000), got {t}")
    multiple = 2 ** cfg.model.depth
    if cfg.data.crop_size % multiple:
        raise ConfigError(
            f"config key 'data.crop_size': {cfg.data.crop_size} is not divisible by 2**model.depth = {multiple}"
        )
    for key, value in (
        ("data.batch_size", cfg.data.batch_size),
        ("trainer.max_steps", cfg.trainer.max_steps),
        ("model.base_channels", cfg.model.base_channels),
        ("model.depth", cfg.model.depth),
        ("data.input_height", cfg.data.input_height),
    ):
        if value < 1:
            raise ConfigError(f"config key '{key}': must be >= 1, got {value}")
    if cfg.objective.lambda_con < 0:
        raise ConfigError(f"config key 'objective.lambda_con': must be >= 0, got {cfg.objective.lambda_con}")
    if not cfg.objective.ce_fluid_weight > 0:
        raise ConfigError(f"config key 'objective.ce_fluid_weight': must be > 0, got {cfg.objective.ce_fluid_weight}")
    if cfg.objective.ce_fluid_weight != 1.0 and (cfg.objective.sup_loss != "dice_ce" or cfg.model.num_classes < 2):
        raise ConfigError("config key 'objective.ce_fluid_weight': weighs the cross-entropy of "
                          "sup_loss 'dice_ce' with num_classes >= 2; set it back to 1.0 or use dice_ce")
    if not (math.isfinite(cfg.objective.blob_weight) and cfg.objective.blob_weight >= 0):
        raise ConfigError(f"config key 'objective.blob_weight': must be finite and >= 0, "
                          f"got {cfg.objective.blob_weight}")
    if cfg.objective.blob_weight and cfg.objective.deep_supervision:
        raise ConfigError("config key 'objective.blob_weight': not with objective.deep_supervision (on labels "
                          "downsampled to the coarse levels small pockets vanish or split); turn one off")
    if cfg.objective.deep_supervision:
        if cfg.uses_contrastive or cfg.objective.mode in ("dann", "entropy_min"):
            raise ConfigError(f"config key 'objective.deep_supervision': mode {cfg.objective.mode} does not take it "
                              "(supervised, upper_bound, finetune, adabn and svdna do)")
        levels = cfg.model.depth - (cfg.model.stem != "conv")
        if levels < 3:
            raise ConfigError(f"config key 'objective.deep_supervision': needs a decoder of >= 3 levels; "
                              f"model.depth {cfg.model.depth} with stem {cfg.model.stem!r} gives {levels}")
    if cfg.objective.temperature <= 0:
        raise ConfigError(f"config key 'objective.temperature': must be > 0, got {cfg.objective.temperature}")
    needs_target = ("segclr_uda", "upper_bound", "multi_domain", "dann", "entropy_min", "adabn", *SVDNA_MODES)
    if cfg.objective.mode in ("dann", "entropy_min", "adabn", *SVDNA_MODES) and cfg.data.target_patients == 0:
        raise ConfigError(f"config key 'data.target_patients': mode {cfg.objective.mode} needs target images")
    k_lo, k_hi = cfg.svdna.k
    if not 0 <= k_lo <= k_hi:
        raise ConfigError(f"config key 'svdna.k': needs 0 <= lo <= hi, got {list(cfg.svdna.k)}")
    if not 0.0 <= cfg.svdna.prob <= 1.0:
        raise ConfigError(f"config key 'svdna.prob': must lie in [0, 1], got {cfg.svdna.prob}")
    if cfg.objective.mode == "finetune" and not cfg.objective.init_from:
        raise ConfigError("config key 'objective.init_from': mode finetune needs a pretrained model.safetensors")
    if cfg.data.target_patients < -1:
        raise ConfigError(f"config key 'data.target_patients': must be -1 (all) or >= 0, "
                          f"got {cfg.data.target_patients}")
    if cfg.objective.mode in needs_target and not cfg.data.target_domains:
        raise ConfigError(f"config key 'data.target_domains': mode {cfg.objective.mode} needs a target domain")
    if cfg.uses_contrastive and cfg.objective.contrastive_loss == "ntxent" and cfg.data.batch_size < 2:
        raise ConfigError("config key 'data.batch_size': NT-Xent needs at least 2 pairs per batch for negatives")
    return cfg


def _did_you_mean(key: str, names, prefix: str = "") -> str:
    """`` (did you mean 'trainer.max_steps'?)`` for the closest known name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.6)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""


def all_keys() -> list[str]:
    """Every ``section.key`` of a :class:`RunConfig`."""
    cfg = RunConfig()
    return [f"{f.name}.{g.name}" for f in dataclasses.fields(cfg) for g in dataclasses.fields(getattr(cfg, f.name))]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.max_steps=200"`` -> (["trainer", "max_steps"], 200)."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected section.key=value with '=' and no spaces, "
                          f"e.g. --set {text.strip() or 'trainer.max_steps'}=VALUE")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) != 2:
        full = [k for k in all_keys() if k.split(".")[1] == key.strip()]
        hint = f"; did you mean --set {full[0]}={raw}?" if len(full) == 1 else ""
        raise ConfigError(f"--set {text}: key {key!r} must be section.key (e.g. trainer.max_steps){hint}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text}: value is not valid YAML ({err})") from None
    return path, value


def apply_overrides(cfg: RunConfig, overrides: list[str] = ()) -> RunConfig:
    """Apply command-line ``section.key=value`` overrides; errors name the ``--set`` that caused them."""
    for text in overrides:
        (section, key), value = parse_override(text)
        try:
            _update(cfg, {section: {key: value}})
        except ConfigError as err:
            raise ConfigError(f"--set {text} (command line): {err}") from None
    return cfg


def from_dict(values: dict[str, Any] | None, overrides: list[str] = ()) -> RunConfig:
    cfg = RunConfig()
    _update(cfg, values or {})
    apply_overrides(cfg, overrides)
    return validate(cfg)


def load_config(path: str | Path | None, overrides: list[str] = (), *, saved_run: bool = False) -> RunConfig:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides.

    ``saved_run=True`` reads a ``config.yaml`` that ``fit`` wrote: keys the run predates take the
    value that reproduces its behaviour (:mod:`segclr.config.history`), not today's default, so
    ``fit --resume`` continues an older run as it began.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        if saved_run:
            values = fill_added(values, saved_run=True)
    cfg = RunConfig()
    try:
        _update(cfg, values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    apply_overrides(cfg, overrides)  # its errors blame the command line, not the file
    try:
        return validate(cfg)
    except ConfigError as err:
        if path is None and not overrides:
            raise
        where = " with ".join(x for x in (str(path) if path is not None else "", "--set values" if overrides else "")
                              if x)
        raise ConfigError(f"{where}: {err}") from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
