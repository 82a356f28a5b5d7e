"""OCT volumes with their geometry, and one entry point to read or write any supported format.

A :class:`Volume` is a ``(slices, H, W)`` array (B-scan index, depth row, A-scan column) plus
the voxel geometry. Every geometric quantity is given in **array-axis order (z, y, x)**:

* ``spacing_mm``: distance between neighbouring voxels along each array axis, in mm
  (``None`` when the file does not say, e.g. a folder of PNG B-scans without a sidecar);
* ``origin``: world position (mm) of voxel ``[0, 0, 0]``, world axes listed as (z, y, x);
* ``direction``: 3x3 matrix whose column ``i`` is the world direction (z, y, x) of array axis ``i``.

So ``world_zyx = origin + direction @ (spacing_mm * index_zyx)``. This is exactly the ITK/LPS
geometry that SimpleITK gives for the same file, with every axis list reversed (ITK lists
x first); :meth:`Volume.itk_geometry` and :meth:`Volume.from_itk` convert. In the RETOUCH
layout the ITK x axis runs across the A-scans, y along the depth and z across the B-scans,
so array axis 0 is the B-scan index, as the slice-wise model expects.

Supported files (by suffix): MetaImage ``.mhd``/``.mha`` (built-in reader and writer for
uncompressed data, SimpleITK for the rest), NIfTI ``.nii``/``.nii.gz`` (nibabel), vendor
exports ``.e2e``/``.fds``/``.fda``/``.img`` (read only, through the optional ``oct-converter``),
and folders of PNG/TIFF B-scans (:mod:`segclr.io.bscans`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segclr.io.images import InputError

METAIMAGE_SUFFIXES = (".mhd", ".mha")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
VENDOR_SUFFIXES = (".e2e", ".fds", ".fda", ".img")
VOLUME_SUFFIXES = METAIMAGE_SUFFIXES + NIFTI_SUFFIXES
READABLE_SUFFIXES = VOLUME_SUFFIXES + VENDOR_SUFFIXES
WRITABLE_SUFFIXES = VOLUME_SUFFIXES
BSCAN_FILE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")  # single B-scans (segclr.io.bscans)

# RETOUCH challenge labels (Bogunovic et al., IEEE TMI 2019).
RETOUCH_LABELS = {1: "IRF", 2: "SRF", 3: "PED"}


def volume_suffix(path: str | Path) -> str:
    """The format suffix of ``path`` (``.nii.gz`` counts as one), lower case; '' if none known."""
    name = Path(path).name.lower()
    for suffix in READABLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def strip_suffix(path: str | Path) -> str:
    """File name without its (possibly double) volume suffix: ``case.nii.gz`` -> ``case``."""
    name = Path(path).name
    suffix = volume_suffix(name)
    return name[: len(name) - len(suffix)] if suffix else Path(name).stem


def format_of(suffix: str) -> str:
    if suffix in METAIMAGE_SUFFIXES:
        return "metaimage"
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in VENDOR_SUFFIXES:
        return "vendor"
    return ""


@dataclass
class Volume:
    """An OCT volume (or label volume) and its geometry; see the module docstring for the axes."""

    array: np.ndarray
    spacing_mm: tuple[float, float, float] | None = None
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    format: str = ""
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputError(f"{self.path or 'volume'}: expected a 3D volume (slices, H, W), got shape {arr.shape}")
        self.array = arr
        if self.spacing_mm is not None:
            sp = tuple(float(s) for s in self.spacing_mm)
            if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
                raise InputError(f"{self.path or 'volume'}: voxel spacing must be 3 positive numbers, got {sp}")
            self.spacing_mm = sp  # type: ignore[assignment]
        origin = tuple(float(o) for o in self.origin)
        if len(origin) != 3 or not all(math.isfinite(o) for o in origin):
            raise InputError(f"{self.path or 'volume'}: origin must be 3 finite numbers, got {origin}")
        self.origin = origin  # type: ignore[assignment]
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3, 3) or not np.isfinite(d).all():
            raise InputError(f"{self.path or 'volume'}: direction must be a finite 3x3 matrix")
        self.direction = d
        if self.path is not None:
            self.path = Path(self.path)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def voxel_mm3(self) -> float | None:
        """Volume of one voxel in mm^3 (``None`` when the spacing is unknown).

        ``|det(direction)| x prod(spacing)``: the product of the spacings for the usual
        orthonormal directions, and less for a sheared grid (a NIfTI affine with shear).
        """
        if self.spacing_mm is None:
            return None
        return float(np.prod(self.spacing_mm) * abs(np.linalg.det(self.direction)))

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A volume with the same geometry (and format) holding ``array`` (same shape)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.array.shape}")
        return replace(self, array=array, direction=self.direction.copy(), meta=dict(self.meta), **changes)

    # --- ITK (x, y, z) view of the geometry -------------------------------------------------
    def itk_geometry(self) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
        """(spacing_xyz, origin_xyz, direction_xyz 3x3) as ITK/SimpleITK would report them."""
        spacing = self.spacing_mm if self.spacing_mm is not None else (1.0, 1.0, 1.0)
        return tuple(spacing[::-1]), tuple(self.origin[::-1]), self.direction[::-1, ::-1].copy()

    @classmethod
    def from_itk(cls, array: np.ndarray, spacing_xyz, origin_xyz, direction_xyz, **kwargs: Any) -> Volume:
        """Build from an array in (z, y, x) order and ITK geometry in (x, y, z) order."""
        spacing = None if spacing_xyz is None else tuple(float(s) for s in spacing_xyz)[::-1]
        d = np.asarray(direction_xyz, dtype=np.float64).reshape(3, 3)[::-1, ::-1]
        return cls(array, spacing, tuple(float(o) for o in origin_xyz)[::-1], d, **kwargs)

    def same_geometry(self, other: Volume, rtol: float = 1e-4, atol: float = 1e-4) -> bool:
        if self.shape != other.shape:
            return False
        if (self.spacing_mm is None) != (other.spacing_mm is None):
            return False
        if self.spacing_mm is not None and not np.allclose(self.spacing_mm, other.spacing_mm, rtol=rtol, atol=atol):
            return False
        return bool(np.allclose(self.origin, other.origin, rtol=rtol, atol=atol)
                    and np.allclose(self.direction, other.direction, rtol=rtol, atol=atol))


def read_volume(path: str | Path, kind: str = "image") -> Volume:
    """Read one volume file (format from its suffix), a folder of B-scans or one B-scan file.

    ``kind`` matters only for B-scan folders: ``"image"`` reads float [0, 1], ``"mask"`` integer labels.
    """
    path = Path(path)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in BSCAN_FILE_SUFFIXES):
        from segclr.io.bscans import read_bscan_folder

        return read_bscan_folder(path, kind=kind)
    suffix = volume_suffix(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if suffix in METAIMAGE_SUFFIXES:
        from segclr.io.metaimage import read_metaimage

        return read_metaimage(path)
    if suffix in NIFTI_SUFFIXES:
        from segclr.io.nifti import read_nifti

        return read_nifti(path)
    if suffix in VENDOR_SUFFIXES:
        from segclr.io.vendor import read_vendor

        volumes = read_vendor(path)
        if len(volumes) != 1:
            raise InputError(f"{path}: holds {len(volumes)} OCT volumes; use segclr.io.vendor.read_vendor for all")
        return volumes[0]
    raise InputError(
        f"{path}: unknown volume format (expected one of {', '.join(READABLE_SUFFIXES)} or a folder of B-scans)"
    )


def probe_volume(path: str | Path) -> tuple[int, int, int] | None:
    """Check that ``path`` can be read, cheaply (headers only); returns its shape where known.

    MetaImage headers are checked against their data file's size and NIfTI headers are parsed;
    vendor files are only checked for existence and for the optional reader (their parsers read
    everything), B-scan folders for holding B-scans.
    """
    path = Path(path)
    if path.is_dir():
        from segclr.io.bscans import list_bscans

        list_bscans(path)
        return None
    if path.is_file() and path.suffix.lower() in BSCAN_FILE_SUFFIXES:
        return None
    suffix = volume_suffix(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if suffix in METAIMAGE_SUFFIXES:
        from segclr.io.metaimage import probe_metaimage

        return probe_metaimage(path)
    if suffix in NIFTI_SUFFIXES:
        from segclr.io.nifti import probe_nifti

        return probe_nifti(path)
    if suffix in VENDOR_SUFFIXES:
        from segclr.io.vendor import INSTALL_HINT, vendor_available

        if not vendor_available():
            raise InputError(f"{path}: reading {suffix} files needs oct-converter; {INSTALL_HINT}")
        return None
    raise InputError(f"{path}: unknown volume format (expected one of {', '.join(READABLE_SUFFIXES)})")


def write_volume(path: str | Path, volume: Volume) -> Path:
    """Write ``volume`` atomically in the format given by the suffix of ``path``; returns ``path``."""
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix in METAIMAGE_SUFFIXES:
        from segclr.io.metaimage import write_metaimage

        write_metaimage(path, volume)
    elif suffix in NIFTI_SUFFIXES:
        from segclr.io.nifti import write_nifti

        write_nifti(path, volume)
    elif suffix in VENDOR_SUFFIXES:
        raise InputError(f"{path}: vendor formats are read-only; write .nii.gz or .mhd instead")
    else:
        raise InputError(f"{path}: unknown volume format (expected one of {', '.join(WRITABLE_SUFFIXES)})")
    return path


def companion_files(path: str | Path) -> list[Path]:
    """Every file that writing ``path`` creates (a ``.mhd`` brings its ``.raw``)."""
    path = Path(path)
    if volume_suffix(path) == ".mhd":
        return [path, path.with_suffix(".raw")]
    return [path]


def check_labels(volume: Volume, allowed: set[int] | list[int], name: str | Path | None = None) -> np.ndarray:
    """Integer label array of ``volume``, refusing non-integers and values outside ``allowed``."""
    where = name or volume.path or "label volume"
    arr = volume.array
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{where}: label volume must hold integer labels, got non-integer values")
    elif arr.dtype.kind not in "iub":
        raise InputError(f"{where}: label volume has unsupported data type {arr.dtype}")
    out = arr.astype(np.int64)
    lo, hi = (int(out.min()), int(out.max())) if out.size else (0, 0)
    values = np.flatnonzero(np.bincount(out.ravel())) if lo >= 0 and hi < 65536 else np.unique(out)
    bad = [int(v) for v in values if int(v) not in set(allowed)]
    if bad:
        raise InputError(f"{where}: label values {bad[:5]} are not among the labels {sorted(set(allowed))}")
    return out
