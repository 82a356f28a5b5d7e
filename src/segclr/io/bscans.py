"""A folder of PNG/TIFF/JPEG B-scans as one volume (slices in file-name order).

PNG and TIFF files carry no reliable 3D geometry, so the spacing is unknown unless the folder
holds a ``volume.json`` sidecar: ``{"spacing_mm": [z, y, x], "origin": [z, y, x]}`` (both
optional). Images read as float [0, 1] (8-bit / 255, 16-bit / 65535, other types as
:func:`~segclr.io.images.read_image` says); masks (``kind="mask"``) as integer labels.

A B-scan's name is its file name without the suffix: its mask is ``NAME.png``, and two folders
are paired by name. Two B-scans of one folder with the same name (``b01.png`` and ``b01.tif``)
are refused, as their masks would overwrite each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError, note, read_image, read_mask, write_image, write_mask
from segclr.io.volumes import BSCAN_FILE_SUFFIXES, Volume

BSCAN_SUFFIXES = BSCAN_FILE_SUFFIXES
OTHER_IMAGE_SUFFIXES = (".bmp", ".gif", ".jp2", ".webp", ".pgm", ".ppm", ".dcm")
SIDECAR = "volume.json"


def list_bscans(folder: str | Path) -> list[Path]:
    """The B-scans of ``folder`` sorted by name; refuses two with one name, notes skipped images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    files = sorted(p for p in visible if p.suffix.lower() in BSCAN_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no PNG/TIFF/JPEG B-scans in this folder")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise InputError(f"{seen[f.stem]}: {f.name} has the same name {f.stem!r}; their masks would both be "
                             f"{f.stem}.png (rename or move one)")
        seen[f.stem] = f
    skipped = sorted(p.name for p in visible if p.suffix.lower() in OTHER_IMAGE_SUFFIXES)
    if skipped:
        note(f"{folder}: skipping {len(skipped)} image(s) in formats other than PNG/TIFF/JPEG "
             f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})", key=f"skip:{folder}")
    return files


def mask_name(bscan: str | Path) -> str:
    """The file name of a B-scan's mask: ``b01.tif`` -> ``b01.png``."""
    return Path(bscan).stem + ".png"


def match_bscans(first: str | Path, second: str | Path) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Pair the B-scans of two folders by name: (pairs in name order, names only in first, only in second)."""
    a = {f.stem: f for f in list_bscans(first)}
    b = {f.stem: f for f in list_bscans(second)}
    pairs = [(a[k], b[k]) for k in sorted(a.keys() & b.keys())]
    return pairs, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())


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


def read_bscan_folder(folder: str | Path, kind: str = "image", num_classes: int = 256,
                      files: list[Path] | None = None) -> Volume:
    """Stack the PNG/TIFF/JPEG B-scans of ``folder`` (sorted by name, or ``files``) into a volume.

    All B-scans must share one size. A single B-scan file gives a one-slice volume (geometry
    from its folder's ``volume.json``).
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() in BSCAN_SUFFIXES:
        files, folder = [folder], folder.parent
    files = list_bscans(folder) if files is None else [Path(f) for f in files]
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


def planned_bscan_outputs(folder: str | Path, names: list[str], spacing_known: bool) -> list[Path]:
    """Every file :func:`write_bscan_folder` writes for B-scans ``names`` (masks, then ``volume.json``)."""
    folder = Path(folder)
    return [folder / mask_name(n) for n in names] + ([folder / SIDECAR] if spacing_known else [])


def write_bscan_folder(folder: str | Path, volume: Volume, names: list[str] | None = None,
                       kind: str = "mask") -> list[Path]:
    """Write one PNG per slice (atomically), with ``volume.json`` when the spacing is known."""
    folder = Path(folder)
    names = names or volume.meta.get("files") or [f"slice{i:03d}.png" for i in range(volume.shape[0])]
    if len(names) != volume.shape[0]:
        raise ValueError(f"{len(names)} names for {volume.shape[0]} slices")
    targets = [folder / mask_name(n) for n in names]
    if len(set(targets)) != len(targets):
        i, j = next((i, j) for j, t in enumerate(targets) for i in range(j) if targets[i] == t)
        raise InputError(f"{targets[j]}: {names[i]} and {names[j]} would both be written to this file")
    for target, sl in zip(targets, volume.array):
        (write_mask if kind == "mask" else write_image)(target, sl)
    if volume.spacing_mm is not None:
        atomic_write_text(folder / SIDECAR, json.dumps({"spacing_mm": list(volume.spacing_mm),
                                                        "origin": list(volume.origin)}, indent=2))
    return targets
