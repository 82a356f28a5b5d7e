"""PNG/TIFF B-scans and label masks, validated on read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segclr.io.atomic import atomic_write_bytes


class InputError(ValueError):
    """A user-supplied file or folder cannot be used; the message names it and the problem."""


def _open(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA"):
                arr = np.asarray(im.convert("RGB"))
                if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
                    raise InputError(f"{path}: colour image; B-scans must be grayscale")
                return arr[..., 0].copy()
            if mode in ("L", "P"):
                return np.asarray(im.convert("L")).copy()
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im).astype(np.int64)
            if mode == "F":
                return np.asarray(im).astype(np.float32)
            raise InputError(f"{path}: unsupported image mode {mode}")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read a grayscale B-scan as float32 in [0, 1] (8-bit /255, 16-bit /65535)."""
    path = Path(path)
    arr = _open(path)
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.int64:
        out = arr.astype(np.float32) / 65535.0
    else:
        out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise InputError(f"{path}: image contains NaN or infinite pixels")
    if out.ndim != 2 or min(out.shape) < 8:
        raise InputError(f"{path}: expected a 2D B-scan of at least 8x8 pixels, got shape {out.shape}")
    return out


def read_mask(path: str | Path, num_classes: int) -> np.ndarray:
    """Read an integer label mask (0 = background) and check its labels are < num_classes."""
    path = Path(path)
    arr = _open(path)
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
