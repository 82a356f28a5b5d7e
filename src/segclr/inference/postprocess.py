"""Post-processing of predicted label masks: drop specks, drop fluid outside the retina.

Both steps are stored in the model bundle (``meta["postprocess"]``, from the config's
``postprocess`` section) and applied by :class:`segclr.inference.predict.Predictor` after the
argmax, on the input grid:

* ``min_component_px``: connected components (8-connectivity, per foreground class) with fewer
  pixels than this *at the model's working resolution* are set to background. On the input grid
  the threshold is scaled by the area of one working pixel in input pixels, so it means the same
  physical size whatever the input's size. 0 keeps every component.
* ``retina_only``: fluid outside a tissue mask estimated from the B-scan itself
  (:func:`retina_mask`) is set to background.

Everything here is plain numpy/scipy on one (H, W) B-scan.

Checked on the embedded training B-scans only (Duke Spectralis patients 1-8, 88 B-scans; the
test patients 9 and 10 were not looked at): :func:`retina_mask` holds 100 % of the reference
fluid pixels and covers 33.5 % of the image on average (at most 42 %); on the simulated
``cirrus_like`` and ``topcon_like`` renderings of the same patients also 100 %, covering 29 %
and 23 %. With the burned-in overlays of :func:`segclr.evaluation.overlay_check.overlay_variant`
drawn into these B-scans, 0.2-0.4 % of the overlay pixels (dilated by 2) fall inside the mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity structuring element

# retina_mask works on a block-averaged copy of about this many rows and columns (speed, and less speckle)
_SMALL_ROWS, _SMALL_COLS = 200, 192
_SIGMA = (1.0, 4.0)  # Gaussian in small-grid rows, columns: layers are horizontal, so smooth mostly along them
_DENT = 0.4  # boundary dents narrower than this fraction of the width are filled
_FLAT_LEVEL = 0.75  # burned-in overlays are drawn at least this bright


def remove_small_components(mask: np.ndarray, min_px: float, fluid_classes: Iterable[int] | None = None
                            ) -> np.ndarray:
    """``mask`` with every connected component of a fluid class smaller than ``min_px`` pixels set to 0.

    Components are 8-connected and taken per class (two touching classes are two components).
    ``fluid_classes`` defaults to every nonzero label present. A component of exactly ``min_px``
    pixels is kept. Returns a new array; ``min_px <= 1`` returns a copy unchanged.
    """
    out = np.array(mask, copy=True)
    if min_px <= 1:
        return out
    classes = [int(c) for c in np.unique(out) if c != 0] if fluid_classes is None else \
        [int(c) for c in fluid_classes if c != 0]
    for c in classes:
        labels, n = ndimage.label(out == c, structure=EIGHT)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        small = sizes < min_px
        small[0] = False
        if small.any():
            out[small[labels]] = 0
    return out


def _block_mean(image: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Mean over fy x fx blocks (a last partial block row or column is dropped)."""
    h, w = image.shape
    if h < fy or w < fx:
        fy, fx = min(fy, h), min(fx, w)
    hh, ww = h - h % fy, w - w % fx
    out = np.zeros((hh // fy, ww // fx), dtype=np.float32)
    for i in range(fy):  # strided sums: several times faster than reshape().mean() for small blocks
        for j in range(fx):
            out += image[i:hh:fy, j:ww:fx]
    return out / (fy * fx)


def _otsu3(values: np.ndarray, bins: int = 64) -> tuple[float, float]:
    """Two thresholds splitting ``values`` into three classes with the largest between-class variance."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi, hi
    # the histogram by bincount: several times faster than np.histogram
    index = np.minimum(((values - lo) * (bins / (hi - lo))).astype(np.intp), bins - 1)
    hist = np.bincount(index.ravel(), minlength=bins)
    edges = lo + (hi - lo) * np.arange(bins + 1) / bins
    p = hist / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w = np.concatenate([[0.0], np.cumsum(p)])            # w[i]: weight of the bins below i
    m = np.concatenate([[0.0], np.cumsum(p * centres)])  # m[i]: their first moment
    i, j = np.triu_indices(bins + 1, k=1)                 # classes: bins [0, i), [i, j), [j, bins)
    ok = (i > 0) & (j < bins)
    i, j = i[ok], j[ok]
    w0, w1, w2 = w[i], w[j] - w[i], 1.0 - w[j]
    m0, m1, m2 = m[i], m[j] - m[i], m[-1] - m[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.nan_to_num(m0 ** 2 / w0) + np.nan_to_num(m1 ** 2 / w1) + np.nan_to_num(m2 ** 2 / w2)
    k = int(np.argmax(between))
    return float(edges[i[k]]), float(edges[j[k]])


def _components(bright: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """8-connected components: labels, size per label (0 for the background), row/column slices."""
    labels, _ = ndimage.label(bright, structure=EIGHT)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels, sizes, [None, *ndimage.find_objects(labels)]


def _burned_in(image: np.ndarray) -> np.ndarray | None:
    """Burned-in graphics of an export (text, glyphs, frames, scale bars) and constant fill: bool (H, W).

    They are drawn in one near-white grey, so their strokes are *flat*: a bright pixel equal to
    both neighbours along a row or a column. Speckle almost never is (on the embedded training
    B-scans the largest such cluster inside the retina has 8 pixels). Clusters of flat bright
    pixels of at least 0.02 % of the image (50 pixels on a 496 x 512 B-scan) and at most a quarter
    of it count, with whatever they enclose (the picture inside a framed inset), grown by one
    pixel. None when there are none.
    """
    bright = image >= _FLAT_LEVEL
    if not bright.any():
        return None
    flat = np.zeros(image.shape, dtype=bool)
    flat[:, 1:-1] = (image[:, 1:-1] == image[:, :-2]) & (image[:, 1:-1] == image[:, 2:])
    flat[1:-1] |= (image[1:-1] == image[:-2]) & (image[1:-1] == image[2:])
    flat &= bright
    labels, n = ndimage.label(flat, structure=EIGHT)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    # a flat cluster over a quarter of the image is not an overlay (a synthetic or saturated image)
    ids = np.flatnonzero((sizes >= max(8, 2e-4 * image.size)) & (sizes <= 0.25 * image.size))
    if len(ids) == 0:
        return None
    out = np.zeros(image.shape, dtype=bool)
    h, w = image.shape
    boxes = ndimage.find_objects(labels)
    for c in ids:
        rows, cols = boxes[c - 1]
        box = (slice(max(0, rows.start - 1), min(h, rows.stop + 1)),
               slice(max(0, cols.start - 1), min(w, cols.stop + 1)))
        shape = ndimage.binary_fill_holes(labels[box] == c)
        out[box] |= ndimage.binary_dilation(shape, structure=EIGHT)
    return out


def _set_aside(bright: np.ndarray, near: int) -> np.ndarray | None:
    """Bright components that touch the outer ``near`` rows (top or bottom) and span at most 30 % of
    the height, with whatever they enclose, grown by 2 pixels; None when there are none."""
    sh = bright.shape[0]
    labels, sizes, boxes = _components(bright)
    ids = [c for c in range(1, len(sizes)) if (boxes[c][0].start < near or boxes[c][0].stop > sh - near)
           and boxes[c][0].stop - boxes[c][0].start <= 0.3 * sh]
    if not ids:
        return None
    lut = np.zeros(len(sizes), dtype=bool)
    lut[ids] = True
    objects = ndimage.binary_fill_holes(lut[labels])
    return ndimage.maximum_filter(objects.view(np.uint8), size=5).view(bool)


def _band(small: np.ndarray) -> np.ndarray | None:
    """The retina's bright band in a smoothed, block-averaged B-scan (None when nothing is bright).

    1. Set aside what lies at the top or bottom edge: bright components within the outer 6 % of
       rows that span at most 30 % of the height, with what they enclose. These are fill outside
       the scanned field (the white wedges of Spectralis exports) and burned-in overlays (text
       lines, corner glyphs, a framed fundus inset, scale bars), first at the upper of two
       three-class Otsu thresholds (the overlays and fill are the brightest), then at the lower one.
    2. Threshold the rest at the lower three-class Otsu threshold (background | tissue | brightest),
       so that a dim retina still counts as bright. When what remains is much smaller than what
       was set aside (a retina that touches the top of the image), nothing is set aside after all.
    3. The anchor is the topmost component of at least a quarter of the largest one's size: the
       retina is the first large bright structure below the dark vitreous; fill strips and the
       sclera of some exports lie below it. Components of at least 5 % of the largest whose top
       is at most 10 % of the height below the anchor's bottom join it (a band broken into inner
       layers and RPE, or cut by a shadow); small glyphs, text and scale bars never do.
    """
    sh = small.shape[0]
    gap = max(2, int(round(0.1 * sh)))
    near = max(1, int(round(0.06 * sh)))
    t_low, t_high = _otsu3(small)
    excluded = np.zeros(small.shape, dtype=bool)
    t = t_low
    for level in ("high", "low"):
        found = _set_aside((small > (t_high if level == "high" else t)) & ~excluded, near)
        if found is not None:
            excluded |= found
            rest = small[~excluded]
            t = _otsu3(rest)[0] if rest.size else t
    labels, sizes, boxes = _components((small > t) & ~excluded)
    if excluded.any() and sizes.max() < 0.25 * excluded.sum():
        labels, sizes, boxes = _components(small > t_low)
    if sizes.max() == 0:
        return None
    big = sizes.max()
    candidates = np.flatnonzero(sizes >= 0.05 * big)
    anchor = min((c for c in candidates if sizes[c] >= 0.25 * big), key=lambda c: boxes[c][0].start)
    lo, hi = boxes[anchor][0].start, boxes[anchor][0].stop
    keep = np.zeros(len(sizes), dtype=bool)
    for c in candidates:
        keep[c] = boxes[c][0].start <= hi + gap and boxes[c][0].stop > lo
    return keep[labels]


def retina_mask(image: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """(H, W) B-scan in [0, 1] -> bool (H, W): the retina, dark fluid pockets inside it included.

    Burned-in graphics (text, corner glyphs, a framed fundus inset, scale bars; see
    :func:`_burned_in`) are painted over with the background level first and are never in the
    mask. The B-scan is then block-averaged to about 200 x 192 (or more) pixels and smoothed,
    mostly along the rows (layers are horizontal); the bright band is found by :func:`_band`
    (fill wedges and whatever else sits at the top or bottom edge set aside). Per column the mask
    runs from the band's first to its last bright row (the ILM to the RPE or below, so dark
    intraretinal and subretinal fluid is inside); dents in these boundaries narrower than 40 % of
    the width are filled (only ever outwards: dim tissue under large cysts, shadows, the foveal
    pit), and each boundary is widened by ``margin`` x H rows. Columns where the band is absent
    get nothing (gaps narrower than a dent are bridged).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected one B-scan (H, W), got shape {img.shape}")
    h, w = img.shape
    if h < 2 or w < 2:
        return np.zeros((h, w), dtype=bool)
    if not np.isfinite(img).all():
        img = np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0)
    overlay = _burned_in(img)
    if overlay is not None:  # painted over with the background level before the band is looked for
        sample = img[::4, ::4][~overlay[::4, ::4]]
        img = np.where(overlay, np.float32(np.median(sample)) if sample.size else img, img)
    fy, fx = max(1, h // _SMALL_ROWS), max(1, w // _SMALL_COLS)
    small = ndimage.gaussian_filter(_block_mean(img, fy, fx), sigma=_SIGMA, mode="nearest")
    sh, sw = small.shape
    band = _band(small)
    if band is None:
        return np.zeros((h, w), dtype=bool)
    present = band.any(axis=0)
    top = np.where(present, band.argmax(axis=0), sh).astype(np.float64)
    bottom = np.where(present, sh - 1 - band[::-1].argmax(axis=0), -1).astype(np.float64)

    # bridge gaps narrower than a dent, then fill dents: a stretch where the top boundary drops
    # (or the bottom one rises) below both its sides over less than _DENT of the width is dim
    # tissue (under large cysts, in a shadow, at the foveal pit), not the retina's shape. A grey
    # opening of the top and a closing of the bottom only ever move a boundary outwards.
    width = max(3, int(_DENT * sw) | 1)
    cols = np.arange(sw)
    valid = np.flatnonzero(present)
    if len(valid) > 1:
        inside = (cols > valid[0]) & (cols < valid[-1]) & ~present
        runs, _ = ndimage.label(inside)
        lengths = np.bincount(runs.ravel())  # per missing column: the length of its run
        gap = inside & (lengths[runs] < width)
        top[gap] = np.interp(cols[gap], valid, top[valid])
        bottom[gap] = np.interp(cols[gap], valid, bottom[valid])
        present = present | gap
    idx = np.flatnonzero(present)
    top[idx] = np.minimum(top[idx], ndimage.grey_opening(top[idx], size=width, mode="nearest"))
    bottom[idx] = np.maximum(bottom[idx], ndimage.grey_closing(bottom[idx], size=width, mode="nearest"))

    # back to the input grid: small row r covers input rows [r * fy, (r + 1) * fy)
    pad = margin * h
    top_in = np.where(present, top * fy - pad, np.inf)
    bottom_in = np.where(present, (bottom + 1) * fy - 1 + pad, -np.inf)
    col_of = np.minimum(np.arange(w) // fx, sw - 1)
    rows = np.arange(h, dtype=np.float32)[:, None]
    mask = (rows >= top_in[col_of].astype(np.float32)) & (rows <= bottom_in[col_of].astype(np.float32))
    if overlay is not None:
        mask &= ~overlay  # no fluid on burned-in graphics, even between the band's boundaries
    return mask


def normalize_params(params: Mapping | None) -> dict:
    """A bundle's ``postprocess`` entry -> ``{"min_component_px": int, "retina_only": bool}``; None = nothing."""
    params = dict(params or {})
    return {"min_component_px": int(params.get("min_component_px") or 0),
            "retina_only": bool(params.get("retina_only", False))}


def is_active(params: Mapping | None) -> bool:
    """Whether ``params`` change any mask."""
    p = normalize_params(params)
    return p["min_component_px"] > 0 or p["retina_only"]


def describe_postprocess(params: Mapping | None, enabled: bool = True) -> str:
    """One line saying what post-processing masks got, for the fluid CSV and the HTML report.

    ``params``: a bundle's ``postprocess`` entry; ``enabled``: False when it was switched off
    (``--no-postprocess``), whatever the bundle says.
    """
    if not enabled:
        return "none (--no-postprocess)"
    p = normalize_params(params)
    if not is_active(p):
        return "none (the model bundle stores no post-processing)"
    steps = []
    if p["min_component_px"] > 0:
        steps.append(f"fluid components < {p['min_component_px']} px (at the model's working resolution) removed")
    if p["retina_only"]:
        steps.append("fluid kept inside the retina mask")
    return "; ".join(steps)


def apply_postprocess(mask: np.ndarray, image: np.ndarray, params: Mapping | None, scale: float = 1.0,
                      fluid_classes: Iterable[int] | None = None) -> np.ndarray:
    """One (H, W) predicted mask and its B-scan -> the post-processed mask (a new array).

    ``params``: ``{"min_component_px": int, "retina_only": bool}`` (None or missing keys: off).
    ``scale``: input-grid pixels per working-resolution pixel (an area ratio, ``H * W / (h * w)``),
    so ``min_component_px`` working pixels are ``min_component_px * scale`` input pixels.
    Fluid outside the retina is removed first, then components that are (now) too small.
    """
    p = normalize_params(params)
    out = np.array(mask, copy=True)
    if not out.any():  # nothing to remove: no tissue mask to estimate (most B-scans of a volume)
        return out
    if p["retina_only"]:
        out[~retina_mask(image)] = 0
    if p["min_component_px"] > 0:
        # a hair below the product, so min * scale that should be a whole number is not lost to rounding
        out = remove_small_components(out, math.ceil(p["min_component_px"] * scale - 1e-6), fluid_classes)
    return out


__all__ = ["apply_postprocess", "describe_postprocess", "is_active", "normalize_params", "remove_small_components",
           "retina_mask"]
