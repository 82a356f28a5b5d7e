"""Model bundles: the UNet weights plus everything needed to use them, in one safetensors file.

A bundle (``model.safetensors``) holds the UNet's tensors and, in the safetensors metadata,
JSON for the architecture, the preprocessing, the class names and the training provenance.
Loading never unpickles anything, so a bundle from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from segclr.io.atomic import atomic_path
from segclr.io.images import InputError

BUNDLE_FORMAT = "segclr-model/1"


def save_bundle(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``state_dict`` and JSON-able ``meta`` (keys: model, preprocess, classes, training)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {"format": BUNDLE_FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_bundle(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a bundle; raises :class:`InputError` naming the file if it is not one of ours."""
    path = Path(path)
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
