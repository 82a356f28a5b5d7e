"""Bottom layer: files in and out (atomic writes, PNG B-scans, model bundles)."""

from segclr.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from segclr.io.images import InputError, read_image, read_mask, write_mask

__all__ = ["InputError", "atomic_path", "atomic_write_bytes", "atomic_write_text", "read_image", "read_mask", "write_mask"]
