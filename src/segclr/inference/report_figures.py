"""Pictures and words of the prediction report (:mod:`segclr.inference.html_report`): B-scan thumbnails
with the predicted outline, en-face fluid-thickness maps with a colour bar, and the plain-language
lines (B-scan ranges, the domain-shift sentence, number formatting)."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Iterable, Sequence

import numpy as np

THUMB_WIDTH = 240       # px, B-scan thumbnails
MAP_SIZE = 200          # px, longest side of an en-face map
TOP_BSCANS = 3
JPEG_QUALITY = 80
CLASS_COLOURS = [(255, 214, 0), (0, 229, 255), (255, 64, 200), (120, 255, 80), (255, 128, 0)]  # outline, per class
COLORMAP = "inferno"
REPORT_NAME = "report.html"


# ----------------------------------------------------------------------------- images
def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def display_range(images: Sequence[np.ndarray]) -> tuple[float, float]:
    """Robust grey range of a volume for display: the 0.5th and 99.5th percentiles of a subsample."""
    sample = np.concatenate([np.asarray(im, dtype=np.float32).ravel()[::7] for im in images]) if len(images) else \
        np.zeros(1, np.float32)
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (0.0, 1.0)


def _shrink_labels(mask: np.ndarray, size: tuple[int, int], num_labels: int) -> list[np.ndarray]:
    """Per foreground label: a (h, w) bool map at ``size`` (w, h) that is True where any source pixel was
    that label, so pockets smaller than a thumbnail pixel still show."""
    from PIL import Image

    out = []
    for label in range(1, num_labels):
        m = (mask == label)
        if not m.any():
            out.append(np.zeros((size[1], size[0]), bool))
            continue
        small = Image.fromarray(m.astype(np.float32)).resize(size, Image.Resampling.BOX)
        out.append(np.asarray(small) > 0)
    return out


def outline_thumbnail(image: np.ndarray, mask: np.ndarray, num_labels: int, grey: tuple[float, float],
                      width: int = THUMB_WIDTH) -> bytes:
    """JPEG of one B-scan, ``width`` px wide (pixel aspect kept), with each class's outline in its colour."""
    from PIL import Image
    from scipy.ndimage import binary_erosion

    h, w = image.shape
    width = min(width, w)
    height = max(1, round(h * width / w))
    lo, hi = grey
    g = np.clip((np.asarray(image, np.float32) - lo) / (hi - lo), 0, 1)
    small = np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BOX))
    rgb = np.repeat(small[..., None], 3, axis=2).copy()
    for k, m in enumerate(_shrink_labels(np.asarray(mask), (width, height), num_labels)):
        if m.any():
            edge = m & ~binary_erosion(m, border_value=0)
            rgb[edge] = CLASS_COLOURS[k % len(CLASS_COLOURS)]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    return buf.getvalue()


def enface_thickness(masks: Sequence[np.ndarray], axial_um: float | None) -> np.ndarray:
    """(B-scans, A-scans) fluid thickness: fluid pixels of each A-scan (any class) x ``axial_um``
    (pixels when ``axial_um`` is None)."""
    counts = np.stack([(np.asarray(m) > 0).sum(axis=0) for m in masks]).astype(np.float32)
    return counts * float(axial_um) if axial_um else counts


def map_size(n_bscans: int, n_ascans: int, spacing_mm: tuple[float, float, float] | None,
             longest: int = MAP_SIZE) -> tuple[int, int, bool]:
    """(width, height) px of the en-face map and whether that is the physical aspect.

    With the spacing: width : height = A-scans x lateral spacing : B-scans x B-scan spacing. Without
    it: each B-scan gets a band of equal height (at least 4 px), capped at ``longest``.
    """
    if spacing_mm is not None and all(s and s > 0 for s in spacing_mm):
        phys_w, phys_h = n_ascans * spacing_mm[2], n_bscans * spacing_mm[0]
        scale = longest / max(phys_w, phys_h)
        return max(1, round(phys_w * scale)), max(1, round(phys_h * scale)), True
    width = min(longest, max(n_ascans, 1))
    return width, int(min(longest, max(n_bscans * 4, 40))), False


def _colormap_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def enface_png(thickness: np.ndarray, vmax: float, size: tuple[int, int]) -> bytes:
    """The thickness map coloured with :data:`COLORMAP` over [0, vmax] at ``size`` (width, height) px.

    Along the A-scans it is averaged (box) when shrunk; along the B-scans each B-scan keeps its own band
    (nearest), so no thickness is smeared between B-scans that may lie far apart.
    """
    from PIL import Image

    z, w = thickness.shape
    img = Image.fromarray(np.ascontiguousarray(thickness, dtype=np.float32))  # mode "F"
    img = img.resize((size[0], z), Image.Resampling.BOX if size[0] < w else Image.Resampling.NEAREST)
    img = img.resize(size, Image.Resampling.NEAREST if size[1] >= z else Image.Resampling.BOX)
    idx = np.clip(np.round(np.asarray(img) / max(vmax, 1e-9) * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(_colormap_lut()[idx]).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _colourbar_css() -> str:
    lut = _colormap_lut()
    stops = ", ".join(f"rgb({r},{g},{b}) {100 * i / 10:.0f}%" for i, (r, g, b) in
                      enumerate(lut[np.linspace(0, 255, 11).astype(int)]))
    return f"linear-gradient(to right, {stops})"


# ----------------------------------------------------------------------------- words
def bscan_ranges(indices: Iterable[int]) -> str:
    """0-based indices -> 1-based ranges: [0, 1, 2, 5] -> '1-3, 6'."""
    idx = sorted(set(int(i) for i in indices))
    if not idx:
        return "none"
    parts, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start + 1}" if start == prev else f"{start + 1}-{prev + 1}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def shift_sentence(score: float | None, threshold: float | None) -> tuple[str, str]:
    """(css class, plain-words sentence) for a volume's domain-shift score against its threshold."""
    if score is None or threshold is None:
        return "unknown", ("No domain-shift check: this model carries no statistics of its training images, so it "
                           "cannot tell whether this volume looks like them.")
    if score > threshold:
        return "flag", (f"Warning: this volume looks unlike the images the model was trained on (shift score "
                        f"{score:.2f}, above the threshold {threshold:.2f}). The segmentation may be unreliable: "
                        f"check every B-scan before using these numbers.")
    return "ok", (f"This volume looks like the training images (shift score {score:.2f}, at or below the threshold "
                  f"{threshold:.2f}). That does not prove the segmentation right; it only raises no "
                  f"unfamiliar-device flag.")


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _e(text) -> str:
    return html.escape(str(text), quote=True)
