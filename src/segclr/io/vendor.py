"""Vendor OCT exports through the optional ``oct-converter`` package (``pip install segclr[vendor]``).

Read only: Heidelberg ``.e2e``, Topcon ``.fds``/``.fda`` and Zeiss ``.img`` (raw Cirrus export).
Heidelberg ``.vol`` has no reader in oct-converter 0.7 and is not supported. oct-converter 0.7's
Topcon readers call ``numpy.fromstring``, which NumPy 2 removed, so ``.fds``/``.fda`` fail with the
NumPy this project installs (the error says so). The pixel spacing
comes from the file where oct-converter finds it; the readers order it differently, which is
undone here:

* ``.e2e``: ``[lateral, axial, slice]`` (oct-converter falls back to 0.01/0.05 mm for lateral
  and slice spacing when the file lacks them);
* ``.fds``/``.fda``: ``[lateral, slice, axial]``;
* ``.img``: no spacing in the file (left unknown; fluid volumes then stay blank). The raw
  Cirrus export has no header either: its B-scan size defaults to 1024 x 512 as in oct-converter
  (``rows``/``cols`` override).

Vendor files cannot be written; predictions for them are written as NIfTI with the same geometry.
These readers are tested against oct-converter's interfaces, not against real vendor files
(none ship with segclr).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segclr.io.images import InputError
from segclr.io.volumes import Volume

INSTALL_HINT = "install the optional vendor reader: pip install segclr[vendor] (oct-converter)"


def _readers():
    try:
        from oct_converter import readers
    except ImportError:
        return None
    return readers


def vendor_available() -> bool:
    return _readers() is not None


def _spacing(suffix: str, pixel_spacing) -> tuple[float, float, float] | None:
    if pixel_spacing is None:
        return None
    try:
        ps = [float(v) for v in pixel_spacing]
    except (TypeError, ValueError):
        return None
    if len(ps) != 3 or not all(np.isfinite(ps)) or min(ps) <= 0:
        return None
    if suffix == ".e2e":
        lateral, axial, slice_ = ps
    else:  # .fds / .fda
        lateral, slice_, axial = ps
    return (slice_, axial, lateral)


def _to_volume(path: Path, suffix: str, oct_volume, index: int) -> Volume:
    slices = [np.asarray(b) for b in (oct_volume.volume or [])]
    if not slices:
        raise InputError(f"{path}: OCT volume {index} holds no B-scans")
    if len({s.shape for s in slices}) != 1 or slices[0].ndim != 2:
        raise InputError(f"{path}: OCT volume {index} has B-scans of different sizes or more than 2 dimensions")
    meta = {"vendor_index": index}
    for key in ("laterality", "volume_id", "acquisition_date"):
        value = getattr(oct_volume, key, None)
        if value is not None:
            meta[key] = str(value)
    return Volume(np.stack(slices), _spacing(suffix, getattr(oct_volume, "pixel_spacing", None)),
                  format="vendor", path=path, meta=meta)


def read_vendor(path: str | Path, rows: int = 1024, cols: int = 512) -> list[Volume]:
    """Every OCT volume in a vendor file (an ``.e2e`` may hold several)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".e2e", ".fds", ".fda", ".img"):
        raise InputError(f"{path}: not a supported vendor format (.e2e, .fds, .fda, .img)")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    readers = _readers()
    if readers is None:
        raise InputError(f"{path}: reading {suffix} files needs oct-converter; {INSTALL_HINT}")
    try:
        if suffix == ".e2e":
            result = readers.E2E(str(path)).read_oct_volume()
        elif suffix == ".fds":
            result = readers.FDS(str(path)).read_oct_volume()
        elif suffix == ".fda":
            result = readers.FDA(str(path)).read_oct_volume()
        else:
            if path.stat().st_size % (rows * cols):
                raise InputError(f"{path}: {path.stat().st_size} bytes is not a whole number of "
                                 f"{rows} x {cols} B-scans (pass rows/cols for other scan sizes)")
            result = readers.IMG(str(path)).read_oct_volume(rows=rows, cols=cols)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - third-party parsers raise anything on corrupt files
        if "fromstring" in str(err):
            raise InputError(f"{path}: oct-converter's {suffix} reader uses numpy.fromstring, which NumPy "
                             f"{np.__version__} no longer has; {suffix} files are not supported with NumPy 2") from None
        raise InputError(f"{path}: oct-converter could not read it ({type(err).__name__}: {err})") from None
    volumes = result if isinstance(result, list) else [result]
    if not volumes:
        raise InputError(f"{path}: no OCT volume found in this file")
    return [_to_volume(path, suffix, v, i) for i, v in enumerate(volumes)]
