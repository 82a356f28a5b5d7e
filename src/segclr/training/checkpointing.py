"""Checkpoint I/O for Lightning: atomic writes and safe (``weights_only``) loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from segclr.io.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, then renames it.

    A run killed mid-save leaves the previous checkpoint intact under its name.
    Loading uses ``torch.load(weights_only=True)``: tensors and plain containers only.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


# --- resuming a run with the config it was started with ----------------------------------------

# Keys a resume may change: they decide how the run is watched, not what it learns.
RESUME_FREE_KEYS = frozenset({
    "trainer.progress_bar", "trainer.num_threads", "trainer.tensorboard", "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps", "trainer.max_bad_steps", "data.eval_domains",
})
# The one training-relevant key a resume may change, and only upwards, and only when named with --set.
EXTENDABLE_KEY = "trainer.max_steps"


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_config(saved, requested, where: Path, explicit: frozenset[str] = frozenset(),
                        predates: frozenset[str] = frozenset()) -> None:
    """Refuse a resume whose config differs from the run's own in a training-relevant key.

    ``saved``/``requested`` are :class:`~segclr.config.RunConfig`. ``trainer.max_steps`` may grow,
    but only when it is in ``explicit`` (given with ``--set`` on the command line). ``predates``:
    keys the run's ``config.yaml`` lacks (filled with their old behaviour), for a hint that says so.
    """
    from segclr.config import ConfigError

    old, new = _flatten(saved.to_dict()), _flatten(requested.to_dict())
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b or key in RESUME_FREE_KEYS:
            continue
        if key == EXTENDABLE_KEY and key in explicit:
            if b < a:
                raise ConfigError(f"{where}: --resume cannot shorten {key} from {a} to {b}; the run keeps its "
                                  f"{a} steps (pass a larger value to train longer)")
            continue
        if key == EXTENDABLE_KEY:
            hint = f"to train longer, pass --set {key}={b} explicitly"
        elif key in predates:
            hint = (f"the run was saved before {key} existed and trained as {a!r}; leave out --config, "
                    f"or add --set {key}={a}")
        else:
            hint = "a resumed run keeps its config; drop the change, or start a new run with another --out"
        raise ConfigError(f"{where}: --resume would change {key} from {a!r} to {b!r}; {hint}")


def override_keys(overrides) -> frozenset[str]:
    """The ``section.key`` names given with ``--set``."""
    return frozenset(text.split("=", 1)[0].strip() for text in overrides if "=" in text)


def resume_config(out_dir: str | Path, config_path: str | Path | None = None, overrides=()):
    """The config to resume ``out_dir`` with: the run's own ``config.yaml`` plus ``overrides``.

    With ``config_path`` the file is loaded instead and must agree with the run's config
    (see :func:`check_resume_config`). Raises ``InputError``/``ConfigError`` naming the key.
    """
    from segclr.config import load_config
    from segclr.io.images import InputError

    saved_path = Path(out_dir) / "config.yaml"
    if not saved_path.is_file():
        raise InputError(f"{saved_path}: not found; {out_dir} holds no run to resume (fit without --resume starts one)")
    saved = load_config(saved_path, saved_run=True)
    # the run's own file (named or not) is a saved run; another --config is today's file, with today's defaults
    own = config_path is None or Path(config_path).resolve() == saved_path.resolve()
    requested = load_config(saved_path if own else config_path, list(overrides), saved_run=own)
    check_resume_config(saved, requested, saved_path, override_keys(overrides), predates=missing_keys(saved_path))
    return requested


def missing_keys(path: Path) -> frozenset[str]:
    """The ``section.key`` names of today's schema that a saved ``config.yaml`` lacks (the run predates them)."""
    import yaml

    from segclr.config import RunConfig

    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return frozenset()
    have = set(_flatten(values)) if isinstance(values, dict) else set()
    return frozenset(set(_flatten(RunConfig().to_dict())) - have)


def checkpoint_step(path: str | Path) -> int:
    """The global step stored in a Lightning checkpoint."""
    return int(torch.load(path, map_location="cpu", weights_only=True).get("global_step", 0))
