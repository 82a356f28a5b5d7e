"""Model bundles: the UNet weights plus everything needed to use them, in one safetensors file.

A bundle (``model.safetensors``) holds the UNet's tensors and, in the safetensors metadata,
JSON for the architecture, the preprocessing, the class names and the training provenance.
Loading never unpickles anything, so a bundle from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from segclr.io.atomic import atomic_path
from segclr.io.images import InputError

BUNDLE_FORMAT = "segclr-model/1"
BUNDLE_NAME = "model.safetensors"


def resolve_bundle_path(path: str | Path) -> Path:
    """The model bundle behind ``path``: a bundle file, or a run folder holding ``model.safetensors``.

    A Lightning ``.ckpt`` (for ``fit --resume``) is refused with the bundle to use instead.
    """
    path = Path(path)
    if path.is_dir():
        if (path / BUNDLE_NAME).is_file():
            return path / BUNDLE_NAME
        hint = " (the run is unfinished: continue it with fit --resume)" if (path / "checkpoints").is_dir() else ""
        raise InputError(f"{path}: a folder without {BUNDLE_NAME}{hint}; pass the model.safetensors written by fit")
    if path.suffix == ".ckpt":
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        bundle = run / BUNDLE_NAME
        use = f"use {bundle}" if bundle.is_file() else f"use the {BUNDLE_NAME} that fit writes at the end of the run"
        raise InputError(f"{path}: a Lightning training checkpoint (only for fit --resume); {use}")
    return path


def save_bundle(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``state_dict`` and JSON-able ``meta`` (keys: model, preprocess, classes, training)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {"format": BUNDLE_FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        # safetensors replaces the temporary file with a new 0600 one; give the bundle the usual mode
        os.chmod(tmp, 0o666 & ~_umask())


def load_bundle(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a bundle; raises :class:`InputError` naming the file if it is not one of ours."""
    path = resolve_bundle_path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: not a segclr model bundle (safetensors read failed: {err})") from None
    if metadata.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{path}: safetensors file without segclr metadata; not a segclr model bundle")
    try:
        meta = {k: json.loads(v) for k, v in metadata.items() if k != "format"}
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: corrupt segclr metadata ({err})") from None
    for key in ("model", "preprocess", "classes"):
        if key not in meta:
            raise InputError(f"{path}: segclr metadata lacks '{key}'")
    return tensors, meta


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
