"""Pixel grids of OCT devices: where a source B-scan lands on a device's native grid.

OCT devices sample the retina on very different grids (Bogunovic et al., IEEE TMI 38(8):1858,
2019): Spectralis 496 rows over ~1.9 mm, Cirrus 1024 rows over 2 mm and 512 A-scans over 6 mm,
Topcon 885 rows over 2.3 mm. A simulated device rendered on its *native* grid therefore has
another image size and pixel spacing than the source, which is the geometric shift a model
meets on a real export.

:class:`NativeGrid` describes the mapping from a source B-scan of shape (h, w) to a device's
grid, keeping physical positions:

* **lateral**: the source is cropped to the device's field of view (centred) when that is
  narrower, then resampled to the device's A-scan spacing;
* **axial**: the source rows are resampled to the device's row spacing; the device's depth range
  is filled by padding rows of no signal below the source (or the source is cut, top-aligned,
  when the device sees less depth).

Images and label masks go through the same crop, resampling (linear / nearest) and padding, so
the real labels carry over to the native grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["NativeGrid", "native_grid", "GEOMETRIES"]

GEOMETRIES = ("source", "native")


@dataclass(frozen=True)
class NativeGrid:
    """Source (h, w) -> device grid (rows, cols); the crop, content size and padding in between."""

    source_shape: tuple[int, int]
    row_stop: int            # source rows kept: [0, row_stop)
    col_start: int           # source columns kept: [col_start, col_stop)
    col_stop: int
    content_rows: int        # device rows holding resampled source content
    rows: int                # device rows in all (content + padding below)
    cols: int
    spacing_um: tuple[float, float]  # device (row, column) spacing

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    def crop(self, x: np.ndarray) -> np.ndarray:
        return x[: self.row_stop, self.col_start: self.col_stop]

    def pad(self, x: np.ndarray) -> np.ndarray:
        """Pad the content (content_rows, cols) with zero rows below to the device's depth range."""
        if x.shape[0] == self.rows:
            return x
        return np.pad(x, ((0, self.rows - x.shape[0]), (0, 0)))

    def image(self, x: np.ndarray, resize) -> np.ndarray:
        """Float image on the source grid -> device grid (``resize``: order-1, field of view kept)."""
        return self.pad(resize(self.crop(x), (self.content_rows, self.cols)))

    def mask(self, m: np.ndarray) -> np.ndarray:
        """Integer label mask on the source grid -> device grid (nearest neighbour, same field of view)."""
        m = self.crop(np.asarray(m))
        if m.shape != (self.content_rows, self.cols):
            factors = (self.content_rows / m.shape[0], self.cols / m.shape[1])
            m = ndimage.zoom(m, factors, order=0, mode="nearest", grid_mode=True)
        return self.pad(m.astype(np.int64, copy=False))


def native_grid(shape: tuple[int, int], source_spacing_um: tuple[float, float], device_spacing_um: tuple[float, float],
                depth_range_mm: float = 0.0, field_of_view_mm: float = 0.0) -> NativeGrid:
    """The device grid of a source B-scan of ``shape`` with (row, column) spacings in um.

    ``depth_range_mm`` / ``field_of_view_mm`` of 0 keep the source's extent.
    """
    h, w = shape
    s_ax, s_lat = source_spacing_um
    d_ax, d_lat = device_spacing_um
    keep_cols = w if field_of_view_mm <= 0 else min(w, max(2, int(round(field_of_view_mm * 1000.0 / s_lat))))
    col_start = (w - keep_cols) // 2
    content = max(2, int(round(h * s_ax / d_ax)))
    rows = content if depth_range_mm <= 0 else max(2, int(round(depth_range_mm * 1000.0 / d_ax)))
    row_stop = h
    if content > rows:  # the device sees less depth: cut the source, top-aligned
        row_stop = max(2, int(round(rows * d_ax / s_ax)))
        content = rows
    cols = max(2, int(round(keep_cols * s_lat / d_lat)))
    return NativeGrid((h, w), row_stop, col_start, col_start + keep_cols, content, rows, cols, (d_ax, d_lat))
