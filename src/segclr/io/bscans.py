"""A folder of PNG/TIFF B-scans as one volume (slices in file-name order).

PNG and TIFF files carry no reliable 3D geometry, so the spacing is unknown unless the folder
holds a ``volume.json`` sidecar: ``{"spacing_mm": [z, y, x], "origin": [z, y, x]}`` (both
optional). Images read as float [0, 1] (8-bit / 255, 16-bit / 65535, as :func:`read_image`);
masks (``kind="mask"``) as integer labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError, read_image, read_mask, write_image, write_mask
from segclr.io.volumes import Volume

BSCAN_SUFFIXES = (".png", ".tif", ".tiff")
SIDECAR = "volume.json"


def list_bscans(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in BSCAN_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder}: no PNG/TIFF B-scans in this folder")
    return files


def read_sidecar(folder: Path) -> dict:
    side = folder / SIDECAR
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{side}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{side}: expected a JSON object with spacing_mm/origin")
    return data


def read_bscan_folder(folder: str | Path, kind: str = "image", num_classes: int = 256) -> Volume:
    """Stack every PNG/TIFF of ``folder`` (sorted by name) into a volume; all must share one size."""
    folder = Path(folder)
    files = list_bscans(folder)
    slices = [read_image(f) if kind == "image" else read_mask(f, num_classes) for f in files]
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        odd, shape = next((f, s.shape) for f, s in zip(files, slices) if s.shape != slices[0].shape)
        raise InputError(f"{odd}: B-scan size {shape} differs from {files[0].name} {slices[0].shape}; "
                         f"a volume's B-scans must share one size")
    side = read_sidecar(folder)
    try:
        volume = Volume(np.stack(slices), side.get("spacing_mm"), side.get("origin", (0.0, 0.0, 0.0)),
                        format="bscans", path=folder, meta={"files": [f.name for f in files]})
    except (TypeError, ValueError) as err:
        raise InputError(f"{folder / SIDECAR}: invalid geometry ({err})") from None
    return volume


def write_bscan_folder(folder: str | Path, volume: Volume, names: list[str] | None = None,
                       kind: str = "mask") -> list[Path]:
    """Write one PNG per slice (atomically), with ``volume.json`` when the spacing is known."""
    folder = Path(folder)
    names = names or volume.meta.get("files") or [f"slice{i:03d}.png" for i in range(volume.shape[0])]
    if len(names) != volume.shape[0]:
        raise ValueError(f"{len(names)} names for {volume.shape[0]} slices")
    written = []
    for name, sl in zip(names, volume.array):
        target = folder / (Path(name).stem + ".png")
        (write_mask if kind == "mask" else write_image)(target, sl)
        written.append(target)
    if volume.spacing_mm is not None:
        atomic_write_text(folder / SIDECAR, json.dumps({"spacing_mm": list(volume.spacing_mm),
                                                        "origin": list(volume.origin)}, indent=2))
    return written
