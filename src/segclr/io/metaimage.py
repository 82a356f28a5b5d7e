"""MetaImage (``.mhd`` + ``.raw``, or ``.mha``): a small built-in reader/writer for uncompressed data.

This is the format of the RETOUCH challenge (``oct.mhd``/``oct.raw`` and
``reference.mhd``/``reference.raw``; labels 0 background, 1 IRF, 2 SRF, 3 PED). The built-in
reader handles uncompressed, single-channel 2D/3D images with a separate data file or inline
(``ElementDataFile = LOCAL``) data, either byte order. Compressed data (``CompressedData = True``),
file lists and the rarer element types go through SimpleITK when it is installed
(``pip install segclr[sitk]``) and are refused with a clear message otherwise.

Geometry mapping (as ITK's MetaImageIO): ``ElementSpacing``, ``Offset`` and ``DimSize`` list x
first; ``TransformMatrix`` holds, row after row, the world direction of image axis x, y, z
(i.e. the columns of ITK's direction matrix). The header is checked against the data file: a
``DimSize``/``ElementType`` that disagrees with the data file's size is refused, naming both.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from segclr.io.atomic import atomic_path, atomic_paths
from segclr.io.images import InputError
from segclr.io.volumes import Volume

ELEMENT_TYPES: dict[str, str] = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
    "MET_UINT": "u4", "MET_INT": "i4", "MET_ULONG_LONG": "u8", "MET_LONG_LONG": "i8",
    "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
DTYPE_TO_ELEMENT = {np.dtype(v).newbyteorder("<"): k for k, v in ELEMENT_TYPES.items()}
_MAX_HEADER = 64 * 1024


class _NeedsSimpleITK(Exception):
    """The file is valid MetaImage but beyond the built-in reader."""


def _parse_header(path: Path, text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise InputError(f"{path}: line {lineno} of the MetaImage header is not 'Key = Value': {line[:60]!r}")
        key, value = line.split("=", 1)
        header[key.strip().lower()] = value.strip()
    return header


def _floats(path: Path, header: dict[str, str], keys: tuple[str, ...], n: int) -> list[float] | None:
    for key in keys:
        if key.lower() in header:
            try:
                values = [float(v) for v in header[key.lower()].split()]
            except ValueError:
                raise InputError(f"{path}: {key} = {header[key.lower()]!r} is not a list of numbers") from None
            if len(values) != n or not all(math.isfinite(v) for v in values):
                raise InputError(f"{path}: {key} must hold {n} finite numbers, got {header[key.lower()]!r}")
            return values
    return None


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "1", "yes")


def read_metaimage(path: str | Path) -> Volume:
    """Read ``.mhd``/``.mha``; built-in for uncompressed data, SimpleITK for the rest."""
    path = Path(path)
    try:
        return _read_builtin(path)
    except _NeedsSimpleITK as why:
        try:
            import SimpleITK  # noqa: F401
        except ImportError:
            raise InputError(f"{path}: {why}; the built-in MetaImage reader cannot read it, "
                             f"install SimpleITK (pip install segclr[sitk])") from None
        return read_with_simpleitk(path)


def probe_metaimage(path: str | Path) -> tuple[int, int, int]:
    """Check the header against the data file without reading the data; returns the (z, y, x) shape."""
    path = Path(path)
    try:
        info = _parse_file(path)
    except _NeedsSimpleITK as why:
        try:
            import SimpleITK as sitk
        except ImportError:
            raise InputError(f"{path}: {why}; the built-in MetaImage reader cannot read it, "
                             f"install SimpleITK (pip install segclr[sitk])") from None
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            last = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
            raise InputError(f"{path}: SimpleITK cannot read it ({last})") from None
        size = tuple(reader.GetSize())[::-1]
        return (1, *size) if len(size) == 2 else size  # type: ignore[return-value]
    return info["shape"]


def _read_builtin(path: Path) -> Volume:
    info = _parse_file(path)
    with info["raw_path"].open("rb") as fh:
        fh.seek(info["offset"])
        data = fh.read(info["nbytes"])
    dtype = info["dtype"]
    array = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(info["shape"])
    return Volume.from_itk(array, info["spacing"], info["origin"], info["direction"], format="metaimage", path=path,
                           meta={"ndims": info["ndims"]})


def _parse_file(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with path.open("rb") as fh:
        head = fh.read(_MAX_HEADER)
    marker = head.lower().find(b"elementdatafile")
    end = head.find(b"\n", marker) if marker >= 0 else -1
    if marker >= 0 and end < 0 and len(head) < _MAX_HEADER:
        end = len(head)  # header file without a final newline
    if marker < 0 or end < 0:
        raise InputError(f"{path}: no 'ElementDataFile' line in its header; not a MetaImage file")
    header_bytes, local_offset = head[:end], end + 1
    try:
        text = header_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"{path}: MetaImage header is not ASCII text; not a MetaImage header") from None
    header = _parse_header(path, text)

    def get(key: str) -> str | None:
        return header.get(key.lower())

    if get("ObjectType") is not None and get("ObjectType").lower() != "image":
        raise InputError(f"{path}: ObjectType = {get('ObjectType')}; only images are supported")
    try:
        ndims = int(get("NDims") or "")
    except ValueError:
        raise InputError(f"{path}: missing or invalid NDims") from None
    if ndims not in (2, 3):
        raise InputError(f"{path}: NDims = {ndims}; only 2D and 3D images are supported")
    try:
        dims = [int(v) for v in (get("DimSize") or "").split()]
    except ValueError:
        raise InputError(f"{path}: DimSize = {get('DimSize')!r} is not a list of integers") from None
    if len(dims) != ndims or min(dims) < 1:
        raise InputError(f"{path}: DimSize = {get('DimSize')!r} must hold {ndims} positive integers (NDims)")
    etype = (get("ElementType") or "").upper()
    if not etype:
        raise InputError(f"{path}: missing ElementType")
    channels = int(get("ElementNumberOfChannels") or 1)
    if channels != 1:
        raise InputError(f"{path}: ElementNumberOfChannels = {channels}; only single-channel images are supported")
    if _true(get("CompressedData")):
        raise _NeedsSimpleITK("compressed data (CompressedData = True)")
    if etype not in ELEMENT_TYPES:
        raise _NeedsSimpleITK(f"ElementType {etype}")
    datafile = get("ElementDataFile")
    if not datafile:
        raise InputError(f"{path}: missing ElementDataFile")
    if datafile.upper().split(" ")[0] == "LIST" or "%" in datafile:  # as ITK: a name may contain spaces
        raise _NeedsSimpleITK(f"ElementDataFile = {datafile} (a list of files)")
    msb = _true(get("BinaryDataByteOrderMSB")) or _true(get("ElementByteOrderMSB"))
    dtype = np.dtype(ELEMENT_TYPES[etype]).newbyteorder(">" if msb else "<")
    expected = int(np.prod(dims)) * dtype.itemsize

    if datafile.upper() == "LOCAL":  # the data follows the header in the same file
        raw_path, data_offset = path, local_offset
    else:
        data_offset = 0
        raw_path = (path.parent / datafile)
        if not raw_path.is_file():
            raise InputError(f"{path}: its data file {raw_path} (ElementDataFile) was not found")
    size = raw_path.stat().st_size - data_offset
    header_size = int(get("HeaderSize") or 0)
    if header_size == -1:
        data_offset += max(0, size - expected)
        size = min(size, expected)
    elif header_size > 0:
        data_offset += header_size
        size -= header_size
    if size != expected:
        raise InputError(
            f"{raw_path}: holds {size} bytes of image data but {path.name} declares DimSize {' '.join(map(str, dims))} "
            f"x {etype} ({dtype.itemsize} bytes) = {expected} bytes; header and data file disagree"
        )
    shape = tuple(dims[::-1]) if ndims == 3 else (1, *dims[::-1])  # x fastest in the file -> numpy (z, y, x)
    spacing = _floats(path, header, ("ElementSpacing", "ElementSize"), ndims)
    origin = _floats(path, header, ("Offset", "Origin", "Position"), ndims) or [0.0] * ndims
    matrix = _floats(path, header, ("TransformMatrix", "Rotation", "Orientation"), ndims * ndims)
    if ndims == 2:
        spacing = None if spacing is None else [*spacing, 1.0]
        origin = [*origin, 0.0]
        direction = np.eye(3)
        if matrix is not None:
            direction[:2, :2] = np.asarray(matrix).reshape(2, 2).T
    else:
        direction = np.eye(3) if matrix is None else np.asarray(matrix).reshape(3, 3).T
    return {"shape": shape, "dtype": dtype, "raw_path": raw_path, "offset": data_offset, "nbytes": expected,
            "spacing": spacing, "origin": origin, "direction": direction, "ndims": ndims}


def read_with_simpleitk(path: str | Path) -> Volume:
    """Read any image SimpleITK understands (compressed MetaImage, NRRD, ...) as a :class:`Volume`."""
    import SimpleITK as sitk

    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
        raise InputError(f"{path}: SimpleITK cannot read it ({first})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: {image.GetNumberOfComponentsPerPixel()} channels; only single-channel images")
    dim = image.GetDimension()
    array = sitk.GetArrayFromImage(image)
    if dim == 2:
        d2 = np.asarray(image.GetDirection()).reshape(2, 2)
        direction = np.eye(3)
        direction[:2, :2] = d2
        return Volume.from_itk(array[None], (*image.GetSpacing(), 1.0), (*image.GetOrigin(), 0.0), direction,
                               format="metaimage", path=path, meta={"ndims": 2})
    if dim != 3:
        raise InputError(f"{path}: {dim}D image; only 2D and 3D images are supported")
    return Volume.from_itk(array, image.GetSpacing(), image.GetOrigin(), image.GetDirection(),
                           format="metaimage", path=path)


def _header_text(volume: Volume, datafile: str, etype: str) -> str:
    """The header; a one-slice volume read from a 2D image is written 2D again (``NDims = 2``)."""
    spacing, origin, direction = volume.itk_geometry()
    z, y, x = volume.shape
    n = 2 if volume.meta.get("ndims") == 2 and z == 1 else 3
    lines = [
        "ObjectType = Image",
        f"NDims = {n}",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        "TransformMatrix = " + " ".join(_num(v) for v in direction[:n, :n].T.ravel()),
        "Offset = " + " ".join(_num(v) for v in origin[:n]),
        "CenterOfRotation = " + " ".join(["0"] * n),
    ]
    if volume.spacing_mm is not None:
        lines.append("ElementSpacing = " + " ".join(_num(v) for v in spacing[:n]))
    lines += [f"DimSize = {x} {y}" + (f" {z}" if n == 3 else ""), f"ElementType = {etype}",
              f"ElementDataFile = {datafile}"]
    return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    return repr(float(v)) if float(v) != int(v) else str(int(v))


def write_metaimage(path: str | Path, volume: Volume) -> None:
    """Write ``.mhd`` (+ ``.raw`` beside it, same stem) or ``.mha`` (inline data), atomically.

    Both files are written under temporary names first (see :mod:`segclr.io.atomic`); then an
    old header is removed, the data file renamed and the header renamed last. So a reader never
    finds a header next to a half-written data file, or an old header next to new data.
    """
    path = Path(path)
    arr = np.asarray(volume.array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    little = arr.dtype.newbyteorder("<")
    if little not in DTYPE_TO_ELEMENT:
        raise InputError(f"{path}: cannot write data type {arr.dtype} as MetaImage")
    etype = DTYPE_TO_ELEMENT[little]
    data = np.ascontiguousarray(arr, dtype=little).tobytes()
    if path.suffix.lower() == ".mha":
        with atomic_path(path) as tmp:
            tmp.write_bytes(_header_text(volume, "LOCAL", etype).encode("ascii") + data)
        return
    if path.suffix.lower() != ".mhd":
        raise InputError(f"{path}: MetaImage files end in .mhd or .mha")
    raw = path.with_suffix(".raw")
    with atomic_paths(raw, path) as (tmp_raw, tmp_header):
        tmp_raw.write_bytes(data)
        tmp_header.write_text(_header_text(volume, raw.name, etype), encoding="ascii")
