"""NIfTI-1 volumes (``.nii``, ``.nii.gz``) through nibabel, with the geometry SimpleITK would report.

NIfTI stores an affine in RAS+ world coordinates for the voxel index (i, j, k), i fastest in
the file. ITK (and nnU-Net's SimpleITK reader) converts it to LPS by negating the first two
world axes; :class:`~segclr.io.volumes.Volume` holds that LPS geometry in (z, y, x) order and
the array as (k, j, i). So an MHD written from a NIfTI file (or the other way round) lands at
the same place in the world, and nnU-Net datasets written here read back identically with
SimpleITK.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from segclr.io.atomic import atomic_write_bytes
from segclr.io.images import InputError
from segclr.io.volumes import Volume

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def _nib():
    try:
        import nibabel
    except ImportError:  # pragma: no cover - nibabel is a dependency
        raise InputError("NIfTI needs nibabel (pip install nibabel)") from None
    return nibabel


def read_nifti(path: str | Path) -> Volume:
    """Read a 2D/3D single-channel NIfTI file as a :class:`Volume` (array (z, y, x))."""
    nib = _nib()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, zlib.error, ValueError) as err:
        raise InputError(f"{path}: not a readable NIfTI file ({err})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise InputError(f"{path}: NIfTI image of shape {data.shape}; only 2D/3D single-channel images are supported")
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise InputError(f"{path}: NIfTI affine is not finite")
    lps = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if not (spacing > 0).all():
        raise InputError(f"{path}: NIfTI affine is singular (a zero voxel size)")
    direction = lps / spacing
    origin = _RAS_TO_LPS @ affine[:3, 3]
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    return Volume.from_itk(array, spacing, origin, direction, format="nifti", path=path)


def probe_nifti(path: str | Path) -> tuple[int, int, int]:
    """Read only the header; returns the (z, y, x) shape the volume will have."""
    nib = _nib()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        shape = tuple(int(n) for n in nib.load(str(path)).shape)
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, zlib.error, ValueError) as err:
        raise InputError(f"{path}: not a readable NIfTI file ({err})") from None
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise InputError(f"{path}: NIfTI image of shape {shape}; only 2D/3D single-channel images are supported")
    return shape[::-1]  # type: ignore[return-value]


def nifti_bytes(volume: Volume, compress: bool) -> bytes:
    """The NIfTI-1 file contents for ``volume`` (gzip-compressed when ``compress``)."""
    nib = _nib()
    spacing, origin, direction = volume.itk_geometry()
    affine = np.eye(4)
    affine[:3, :3] = _RAS_TO_LPS @ (direction * np.asarray(spacing)[None, :])
    affine[:3, 3] = _RAS_TO_LPS @ np.asarray(origin)
    arr = np.asarray(volume.array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    image = nib.Nifti1Image(np.ascontiguousarray(np.transpose(arr, (2, 1, 0))), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    data = image.to_bytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if compress else data


def write_nifti(path: str | Path, volume: Volume) -> None:
    """Write ``.nii`` or ``.nii.gz`` atomically (temporary file + rename)."""
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise InputError(f"{path}: NIfTI files end in .nii or .nii.gz")
    atomic_write_bytes(path, nifti_bytes(volume, compress=name.endswith(".gz")))
