"""Find the cases (volumes) behind a path: a file, a folder or a dataset.

Layouts recognised, in this order:

* ``file``: one volume file (``.mhd``, ``.mha``, ``.nii``, ``.nii.gz``, ``.e2e``, ``.fds``, ``.fda``,
  ``.img``); the case id is the file name without its suffix, or the folder name for RETOUCH's
  ``oct.mhd``/``reference.mhd``;
* ``nnunet``: a folder with ``dataset.json`` (see :mod:`segclr.io.nnunet`);
* ``retouch``: a folder whose sub-folders hold ``oct.mhd`` (and ``reference.mhd`` where labeled),
  or one such case folder itself; case id = sub-folder name; labels 1 IRF, 2 SRF, 3 PED;
* ``volumes``: a folder of volume files (case id = file name without suffix, and without the
  channel suffix ``_0000`` when every file has it, as in nnU-Net's ``imagesTr``/``imagesTs``);
* ``bscans``: a folder of PNG/TIFF/JPEG B-scans, one volume (case id = folder name), or one
  B-scan file (case id = file name without suffix).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segclr.io.bscans import BSCAN_SUFFIXES
from segclr.io.images import InputError
from segclr.io.nnunet import is_nnunet_dataset, read_dataset
from segclr.io.volumes import READABLE_SUFFIXES, RETOUCH_LABELS, strip_suffix, volume_suffix

RETOUCH_IMAGE, RETOUCH_LABEL = "oct.mhd", "reference.mhd"


@dataclass
class Case:
    case_id: str
    image: Path | None           # the image volume (or, for a folder of predictions, the volume itself)
    label: Path | None = None    # reference labels where the layout has them
    domain: str | None = None


@dataclass
class CaseSet:
    path: Path
    layout: str                  # file | nnunet | retouch | volumes | bscans
    cases: list[Case]
    labels: dict[int, str] | None = None   # foreground label -> name, when the layout says
    file_ending: str | None = None         # the format new files for this layout should use

    def by_id(self) -> dict[str, Case]:
        return {c.case_id: c for c in self.cases}


def _case_id(path: Path) -> str:
    if path.name.lower() in (RETOUCH_IMAGE, RETOUCH_LABEL):
        return path.parent.name
    return strip_suffix(path)


def _is_retouch_case(folder: Path) -> bool:
    return (folder / RETOUCH_IMAGE).is_file() or (folder / RETOUCH_LABEL).is_file()


def is_volume_input(path: str | Path) -> bool:
    """True when ``path`` is a volume file or a folder/dataset of volumes (not a PNG folder)."""
    path = Path(path)
    if path.is_file():
        return bool(volume_suffix(path))
    if not path.is_dir():
        return bool(volume_suffix(path))
    if is_nnunet_dataset(path) or _is_retouch_case(path):
        return True
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if any(p.is_dir() and _is_retouch_case(p) for p in entries):
        return True
    return any(p.is_file() and volume_suffix(p) for p in entries)


def find_cases(path: str | Path, domain_map: str | Path | None = None) -> CaseSet:
    """List the cases of ``path``; raises :class:`InputError` naming it when there are none."""
    path = Path(path)
    if path.is_file():
        suffix = volume_suffix(path)
        if suffix:
            labels = RETOUCH_LABELS if path.name.lower() in (RETOUCH_IMAGE, RETOUCH_LABEL) else None
            return CaseSet(path, "file", [Case(_case_id(path), path)], labels, suffix)
        if path.suffix.lower() in BSCAN_SUFFIXES:  # one B-scan: a one-slice volume
            return CaseSet(path, "bscans", [Case(path.stem, path)], None, ".png")
        raise InputError(f"{path}: unknown volume format (expected one of {', '.join(READABLE_SUFFIXES)})")
    if not path.is_dir():
        raise InputError(f"{path}: file or folder not found")
    if is_nnunet_dataset(path):
        ds = read_dataset(path, domain_map)
        return CaseSet(path, "nnunet", [Case(c.case_id, c.image, c.label, c.domain) for c in ds.cases],
                       ds.foreground, ds.file_ending)
    if _is_retouch_case(path):
        sub = [path]
    else:
        sub = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_retouch_case(p))
    if sub:
        cases = []
        for folder in sub:
            image, label = folder / RETOUCH_IMAGE, folder / RETOUCH_LABEL
            cases.append(Case(folder.name, image if image.is_file() else None, label if label.is_file() else None))
        return CaseSet(path, "retouch", cases, dict(RETOUCH_LABELS), ".mhd")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and volume_suffix(p))
    if files:
        cases = [Case(_case_id(f), f) for f in files]
        if all(c.case_id.endswith("_0000") and len(c.case_id) > 5 for c in cases):
            for c in cases:  # an nnU-Net images folder (imagesTr/imagesTs): CASE_0000 -> CASE
                c.case_id = c.case_id[:-5]
        ids = [c.case_id for c in cases]
        dup = next((i for i in ids if ids.count(i) > 1), None)
        if dup is not None:
            raise InputError(f"{path}: two volumes share the case id {dup!r} (e.g. {dup}.mhd and {dup}.nii.gz)")
        return CaseSet(path, "volumes", cases, None, None)
    if any(p.suffix.lower() in BSCAN_SUFFIXES for p in path.iterdir()):
        return CaseSet(path, "bscans", [Case(path.name, path)], None, ".png")
    raise InputError(f"{path}: no volumes here (expected volume files, RETOUCH case folders with oct.mhd, "
                     f"an nnU-Net dataset with dataset.json, or PNG/TIFF/JPEG B-scans)")
