"""PNG/TIFF/JPEG B-scans and label masks, validated on read.

Intensities (:func:`read_image`): 8-bit pixels are divided by 255 and 16-bit ones by 65535.
Any other type (float or 32-bit integer TIFFs) is used as it is when it already lies in
[0, 1]; otherwise it is min-max scaled to [0, 1] per B-scan, and one note says so. This is the
rule the volume path applies per volume.

Colour: a B-scan must be grey. RGB, RGBA and palette images whose three channels are equal are
read as grey (an alpha channel is ignored, with a note); colour ones are refused. Palette masks
are read by palette index, as label masks are usually stored. JPEG B-scans are read with a note
that JPEG is lossy; JPEG masks are refused (lossy compression changes label values).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segclr.io.atomic import atomic_write_bytes


class InputError(ValueError):
    """A user-supplied file or folder cannot be used; the message names it and the problem."""


_NOTED: set[str] = set()


def note(message: str, key: str | None = None) -> None:
    """Print ``note: message`` to stderr, once per ``key`` (default: the message) and process."""
    key = message if key is None else key
    if key in _NOTED:
        return
    _NOTED.add(key)
    from tqdm import tqdm

    tqdm.write(f"note: {message}", file=sys.stderr)


def reset_notes() -> None:
    """Forget which notes were printed (for tests, and for long-running processes between runs)."""
    _NOTED.clear()


def _grey(path: Path, rgb: np.ndarray, role: str, tolerance: int = 0) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    if max(int(np.abs(r - g).max()), int(np.abs(r - b).max())) > tolerance:
        raise InputError(f"{path}: colour image; B-scans must be grayscale" if role == "image" else
                         f"{path}: colour mask; masks must be grayscale or palette (index) images")
    return rgb[..., 0].copy() if tolerance == 0 else np.rint((r + g + b) / 3.0).astype(np.uint8)


def _open(path: Path, role: str = "image") -> np.ndarray:
    """Pixels of a B-scan (``role="image"``) or mask: uint8, uint16, int32/int64 or float32."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            mode, fmt = im.mode, im.format
            if fmt == "JPEG":
                if role == "mask":
                    raise InputError(f"{path}: JPEG mask; JPEG's lossy compression changes label values, "
                                     f"save masks as PNG")
                note("JPEG B-scans are lossy; their compression artefacts reach the model (prefer PNG/TIFF "
                     f"exports), first: {path}", key="jpeg")
            has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
            if has_alpha:
                note(f"{path}: its alpha channel (transparency) is ignored", key=f"alpha:{path.parent}")
            if mode in ("P", "PA") and role == "mask":
                idx = np.asarray(im)
                return (idx[..., 0] if idx.ndim == 3 else idx).copy()  # palette index = label
            if mode in ("P", "PA", "RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB"))
                return _grey(path, rgb, role, tolerance=3 if fmt == "JPEG" else 0)
            if mode == "LA":
                return np.asarray(im.getchannel("L")).copy()
            if mode == "L":
                return np.asarray(im).copy()
            if mode == "1":
                return np.asarray(im.convert("L")).copy() if role == "image" else np.asarray(im).astype(np.uint8)
            if mode.startswith("I;16"):
                return np.asarray(im).astype(np.int64 if mode.endswith("S") else np.uint16)
            if mode == "I":  # PNG has no 32-bit grey: an "I" PNG is 16-bit (older Pillow versions)
                arr = np.asarray(im)
                return arr.astype(np.uint16) if fmt == "PNG" else arr.astype(np.int64)
            if mode == "F":
                return np.asarray(im).astype(np.float32)
            if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                raise InputError(f"{path}: colour image (mode {mode}); B-scans must be grayscale")
            raise InputError(f"{path}: unsupported image mode {mode}")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None


def to_unit_range(arr: np.ndarray, where: str | Path, per: str = "B-scan", key: str | None = None) -> np.ndarray:
    """8-bit / 255, 16-bit / 65535; other types as they are in [0, 1], else min-max scaled (one note)."""
    arr = np.asarray(arr)
    if arr.dtype in (np.uint8, np.uint16):  # divided in place: one float copy, not two (a volume is 100+ MB)
        out = arr.astype(np.float32)
        out /= np.float32(255.0 if arr.dtype == np.uint8 else 65535.0)
        return out
    out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise InputError(f"{where}: image contains NaN or infinite pixels")
    if out.size == 0:
        return out
    lo, hi = float(out.min()), float(out.max())
    if lo >= 0.0 and hi <= 1.0:
        return out
    note(f"{where}: {arr.dtype} intensities span [{lo:.4g}, {hi:.4g}], not [0, 1]; min-max scaled to [0, 1] "
         f"per {per}" + (" (noted once per folder)" if per == "B-scan" else ""), key=key or f"rescale:{where}")
    return (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)


def read_image(path: str | Path) -> np.ndarray:
    """Read a grayscale B-scan as float32 in [0, 1] (see the module docstring for the rule)."""
    path = Path(path)
    arr = _open(path, "image")
    if arr.ndim != 2 or min(arr.shape) < 8:
        raise InputError(f"{path}: expected a 2D B-scan of at least 8x8 pixels, got shape {arr.shape}")
    return to_unit_range(arr, path, "B-scan", key=f"rescale:{path.parent}")


def read_mask(path: str | Path, num_classes: int) -> np.ndarray:
    """Read an integer label mask (0 = background) and check its labels are < num_classes."""
    path = Path(path)
    arr = _open(path, "mask")
    if arr.dtype == np.float32:
        raise InputError(f"{path}: mask must hold integer labels, got floating-point pixels")
    arr = arr.astype(np.int64)
    bad = np.unique(arr[(arr < 0) | (arr >= num_classes)])
    if bad.size:
        raise InputError(
            f"{path}: mask values {bad[:5].tolist()} are outside the labels 0..{num_classes - 1}"
        )
    return arr


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a label mask as an 8-bit PNG, atomically."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=np.uint8)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a float [0, 1] or uint8 B-scan as an 8-bit grayscale PNG, atomically."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
