"""NIfTI-1 volumes (``.nii``, ``.nii.gz``) through nibabel, with the geometry SimpleITK would report.

NIfTI stores an affine in RAS+ world coordinates for the voxel index (i, j, k), i fastest in
the file. ITK (and nnU-Net's SimpleITK reader) converts it to LPS by negating the first two
world axes; :class:`~segclr.io.volumes.Volume` holds that LPS geometry in (z, y, x) order and
the array as (k, j, i). So an MHD written from a NIfTI file (or the other way round) lands at
the same place in the world, and nnU-Net datasets written here read back identically with
SimpleITK.

Units: ``xyzt_units`` says whether the affine is in mm, micrometres or metres; it is converted
to mm on reading (an unknown unit is read as mm, with a note) and the output is written in the
input's unit. Transforms: when qform and sform disagree, the one ITK uses is taken (the sform
when ``sform_code`` is 1 or there is no qform, otherwise the qform), and the output is written
with qform = sform = that transform.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from segclr.io.atomic import atomic_write_bytes
from segclr.io.images import InputError, note
from segclr.io.volumes import Volume

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def _nib():
    try:
        import nibabel
    except ImportError:  # pragma: no cover - nibabel is a dependency
        raise InputError("NIfTI needs nibabel (pip install nibabel)") from None
    return nibabel


_UNIT_MM = {"mm": 1.0, "micron": 1e-3, "meter": 1e3}


def _spatial_unit(path: Path, header) -> str:
    """The header's spatial unit (``mm``, ``micron`` or ``meter``); unknown ones read as mm, with a note."""
    code = int(header["xyzt_units"]) & 0x07
    unit = {2: "mm", 3: "micron", 1: "meter"}.get(code)
    if unit is None:
        note(f"{path}: NIfTI spatial unit {'unknown' if code == 0 else f'code {code}'} (xyzt_units); read as mm",
             key=f"units:{path}")
        return "mm"
    return unit


def _orthogonal(m: np.ndarray) -> bool:
    cols = m / np.linalg.norm(m, axis=0)
    return bool(np.allclose(cols.T @ cols, np.eye(3), atol=1e-4))


def _choose_affine(path: Path, header) -> tuple[np.ndarray, str]:
    """The voxel-to-RAS affine ITK uses: the sform when ``sform_code`` is 1 (or there is no qform),
    else the qform, else the voxel sizes alone (origin 0, LPS axes); a sheared sform gives way
    to a qform, as in ITK."""
    sform, scode = header.get_sform(coded=True)
    qform, qcode = header.get_qform(coded=True)
    use_sform = sform is not None and (scode == 1 or qform is None)
    if use_sform and qform is not None and not _orthogonal(np.asarray(sform)[:3, :3]):
        use_sform = False  # ITK refuses a non-orthonormal sform when a qform is there
    if use_sform:
        return np.asarray(sform, dtype=np.float64), "sform"
    if qform is not None:
        return np.asarray(qform, dtype=np.float64), "qform"
    zooms = [float(z) for z in header.get_zooms()[:3]] + [1.0] * (3 - len(header.get_zooms()[:3]))
    affine = np.eye(4)
    affine[:3, :3] = _RAS_TO_LPS @ np.diag(zooms)
    return affine, "pixdim"


def read_nifti(path: str | Path) -> Volume:
    """Read a 2D/3D single-channel NIfTI file as a :class:`Volume` (array (z, y, x)).

    The geometry is the one ITK (SimpleITK, nnU-Net) reports: the transform chosen as
    :func:`_choose_affine` says, in the spatial unit of ``xyzt_units`` converted to mm.
    """
    nib = _nib()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, zlib.error, ValueError) as err:
        raise InputError(f"{path}: not a readable NIfTI file ({err})") from None
    ndims = 2 if data.ndim == 2 else 3
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise InputError(f"{path}: NIfTI image of shape {data.shape}; only 2D/3D single-channel images are supported")
    unit = _spatial_unit(path, image.header)
    affine, transform = _choose_affine(path, image.header)
    if not np.isfinite(affine).all():
        raise InputError(f"{path}: NIfTI {transform} is not finite")
    affine = affine * np.array([[_UNIT_MM[unit]] * 4] * 3 + [[0.0, 0.0, 0.0, 1.0]])
    lps = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if not (spacing > 0).all():
        raise InputError(f"{path}: NIfTI {transform} is singular (a zero voxel size)")
    direction = lps / spacing
    origin = _RAS_TO_LPS @ affine[:3, 3]
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    return Volume.from_itk(array, spacing, origin, direction, format="nifti", path=path,
                           meta={"nifti_unit": unit, "ndims": ndims, "nifti_transform": transform})


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
    """The NIfTI-1 file contents for ``volume`` (gzip-compressed when ``compress``).

    The spatial unit is the input's (``volume.meta["nifti_unit"]``, default mm), and qform and
    sform hold the same transform (code 1), so every reader places it alike. A sheared grid
    cannot be a qform: it is written as sform only (qform code 0). A 2D input stays 2D.
    """
    nib = _nib()
    unit = volume.meta.get("nifti_unit", "mm")
    scale = 1.0 / _UNIT_MM.get(unit, 1.0)
    spacing, origin, direction = volume.itk_geometry()
    affine = np.eye(4)
    affine[:3, :3] = _RAS_TO_LPS @ (direction * np.asarray(spacing)[None, :]) * scale
    affine[:3, 3] = _RAS_TO_LPS @ np.asarray(origin) * scale
    arr = np.asarray(volume.array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    data = np.transpose(arr, (2, 1, 0))
    if volume.meta.get("ndims") == 2 and data.shape[2] == 1:
        data = data[..., 0]
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_xyzt_units(unit)
    if _orthogonal(affine[:3, :3]):
        image.set_qform(affine, code=1)
    else:
        image.set_qform(None, code=0)
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
