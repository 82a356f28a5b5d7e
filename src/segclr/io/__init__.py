"""Bottom layer: files in and out (atomic writes, PNG B-scans, OCT volumes, model bundles)."""

from segclr.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from segclr.io.images import InputError, read_image, read_mask, write_mask
from segclr.io.volumes import Volume, read_volume, write_volume

__all__ = ["InputError", "Volume", "atomic_path", "atomic_write_bytes", "atomic_write_text", "read_image",
           "read_mask", "read_volume", "write_mask", "write_volume"]
