"""Does a model call burned-in overlays fluid? A fixed set of export overlays on real test B-scans.

Real OCT exports carry graphics burned into the pixels; models trained without them marked the
orientation glyph of real healthy B-scans as fluid (0.4-2.9 % of all pixels). This check draws a
deterministic, realistic set of overlays into full B-scans and measures the predicted fluid on them:

* an orientation **glyph** (arrow, L or ring) in one of the two darkest corners;
* a **text** line at the top (5x7 procedural font, two image pixels per font pixel on a 496-row B-scan);
* a **scale bar** with end ticks and a number above it, near the bottom;
* a fundus-like **inset** (smooth texture with a bright disc and a bright border) in another corner.

Sizes are fractions of the B-scan, so the overlays cover the same share of any device's grid.
The corners, the glyph's kind and the text come from ``seed`` (each B-scan of a list gets
``seed + its index``), so a run is repeatable and different B-scans get different layouts.

The score of one B-scan: predicted fluid pixels on the overlay pixels dilated by 2 px (a 5 x 5
square), as a fraction of all pixels of the B-scan. The target is at most 0.05 %
(:data:`TARGET_FRACTION`). The same fraction on the clean B-scan (same pixels, no overlays) is
reported beside it as a control: fluid the model finds there without any overlay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.ndimage import binary_dilation

from segclr.data.overlays_aug import (arrow_stamp, box_stamp, ell_stamp, fundus_texture, paste, random_text,
                                      ring_stamp, scale_bar_stamp, text_stamp, font_chars)

TARGET_FRACTION = 0.0005   # 0.05 % of the image's pixels
DILATION_PX = 2
OVERLAY_VALUE = 0.95

Predict = Callable[[np.ndarray, "tuple[float, float] | None"], np.ndarray]


def overlay_variant(image: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W) float in [0, 1] -> (the image with burned-in overlays (float32), overlay mask (bool)).

    Deterministic for a given ``seed`` and image shape; pixels outside the overlay mask are the input's.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected one B-scan (H, W), got shape {image.shape}")
    h, w = image.shape
    rng = random.Random(int(seed))
    out = np.array(image, dtype=np.float32, copy=True)[None]
    overlay = np.zeros((h, w), dtype=bool)
    side = min(h, w)
    margin_y, margin_x = max(2, round(0.02 * h)), max(2, round(0.02 * w))
    font_scale = max(1, round(side / 250))

    def corner(name: str, sh: int, sw: int) -> tuple[int, int]:
        top = margin_y if name[0] == "t" else h - margin_y - sh
        left = margin_x if name[1] == "l" else w - margin_x - sw
        return top, left

    # the glyph goes to one of the two darkest corners (where a bright glyph stands out, as on real exports;
    # the Duke B-scans have bright registration wedges in some corners), the inset to another corner
    g = max(7, round(0.07 * side))
    corners = ["tl", "tr", "bl", "br"]
    darkness = {c: float(image[corner(c, g, g)[0]:corner(c, g, g)[0] + g, corner(c, g, g)[1]:corner(c, g, g)[1] + g]
                         .mean()) for c in corners}
    glyph_corner = rng.choice(sorted(corners, key=lambda c: (darkness[c], c))[:2])
    inset_corner = rng.choice([c for c in corners if c != glyph_corner])

    # text line at the top, between the top corners
    text = text_stamp(random_text(rng, 5, rng.randint(12, 20)), 5, font_scale, font_scale)
    text = text[:, : int(0.44 * w)]
    lo = round(0.28 * w)
    text_left = rng.randint(lo, max(lo, round(0.72 * w) - text.shape[1]))
    paste(out, None, overlay, margin_y, text_left, text, OVERLAY_VALUE)

    # orientation glyph in its corner
    t = max(2, g // 8)
    kind = rng.randrange(3)
    stamp = (arrow_stamp(g, t, rng.randrange(4)) if kind == 0 else ell_stamp(g, t, rng.randrange(4)) if kind == 1
             else ring_stamp(g, t, rng.random() < 0.5))
    paste(out, None, overlay, *corner(glyph_corner, g, g), stamp, OVERLAY_VALUE)

    # fundus-like inset in another corner: texture, bright optic disc, bright border
    ih, iw = max(8, round(0.22 * h)), max(8, round(0.22 * w))
    inset = fundus_texture(rng, ih, iw, 0.15, 0.35)
    yy, xx = np.mgrid[:ih, :iw]
    cy, cx = rng.uniform(0.3, 0.7) * ih, rng.uniform(0.25, 0.45) * iw
    inset[((yy - cy) / (0.12 * ih)) ** 2 + ((xx - cx) / (0.12 * iw)) ** 2 <= 1] = 0.8
    inset[box_stamp(ih, iw, max(1, round(side / 250)))] = OVERLAY_VALUE
    paste(out, None, overlay, *corner(inset_corner, ih, iw), np.ones((ih, iw), dtype=bool), inset)

    # scale bar with its number, near the bottom, on the side away from the bottom corner in use
    length = max(8, round(0.2 * w))
    thick = max(2, round(h / 200))
    bar = scale_bar_stamp(length, thick, max(thick + 2, round(h / 60)))
    label = text_stamp(font_chars(rng.choice(("200", "250", "500", "1MM"))), 3, font_scale + 1, font_scale + 1)
    top = h - margin_y - round(0.04 * h) - bar.shape[0]
    used = {c[1] for c in (glyph_corner, inset_corner) if c[0] == "b"}
    side_free = "l" if "l" not in used else "r" if "r" not in used else rng.choice("lr")
    left = round(0.3 * w) if side_free == "l" else w - round(0.3 * w) - length
    paste(out, None, overlay, top, left, bar, OVERLAY_VALUE)
    paste(out, None, overlay, top - label.shape[0] - thick, left + (length - label.shape[1]) // 2, label,
          OVERLAY_VALUE)
    return out[0], overlay


def _dilate(mask: np.ndarray, px: int = DILATION_PX) -> np.ndarray:
    return binary_dilation(mask, structure=np.ones((2 * px + 1, 2 * px + 1), dtype=bool))


@dataclass
class BscanOverlayScore:
    fraction: float              # fluid on (dilated) overlay pixels / all pixels, B-scan with overlays
    clean_fraction: float        # the same pixels, fluid predicted on the clean B-scan (control)
    fluid_pixels: int
    overlay_pixels: int          # dilated overlay pixels
    image: np.ndarray            # the B-scan with overlays
    overlay: np.ndarray          # the (undilated) overlay mask
    prediction: np.ndarray       # predicted mask of the B-scan with overlays


def score_bscan(predictor: Predict, image: np.ndarray, spacing_um: tuple[float, float] | None,
                seed: int, control: bool = True) -> BscanOverlayScore:
    """One B-scan: its overlay variant, the prediction on it and the fraction of fluid on the overlays."""
    variant, overlay = overlay_variant(image, seed)
    zone = _dilate(overlay)
    pred = np.asarray(predictor(variant, spacing_um))
    on = (pred > 0) & zone
    clean = float("nan")
    if control:
        clean = float(((np.asarray(predictor(np.asarray(image, dtype=np.float32), spacing_um)) > 0) & zone).mean())
    return BscanOverlayScore(float(on.mean()), clean, int(on.sum()), int(zone.sum()), variant, overlay, pred)


@dataclass
class OverlayFluid:
    fractions: np.ndarray                 # per B-scan
    clean_fractions: np.ndarray           # per B-scan, control on the clean B-scans (NaN when not computed)
    max: float
    mean: float
    worst: int                            # index of the B-scan with the largest fraction
    over_target: int                      # B-scans above TARGET_FRACTION
    scores: list[BscanOverlayScore] = field(default_factory=list, repr=False)


def overlay_fluid_fraction(predictor: Predict, images: Sequence[np.ndarray],
                           spacings: Sequence[tuple[float, float] | None] | tuple[float, float] | None,
                           seed: int = 0, control: bool = True, keep: bool = False) -> OverlayFluid:
    """Predicted fluid on burned-in overlays for each B-scan (B-scan ``i`` gets the layout of ``seed + i``).

    ``predictor(image, spacing_um) -> mask`` (e.g. :class:`segclr.inference.predict.Predictor`);
    ``spacings``: one (row, column) um per B-scan, or one for all. ``keep``: keep each B-scan's picture
    and prediction in ``scores`` (for figures).
    """
    images = list(images)
    if not images:
        raise ValueError("no B-scans to check")
    if spacings is None or (len(spacings) == 2 and all(isinstance(v, (int, float)) for v in spacings)):
        spacings = [spacings] * len(images)  # type: ignore[list-item]
    if len(spacings) != len(images):
        raise ValueError(f"{len(images)} B-scans but {len(spacings)} spacings")
    scores = [score_bscan(predictor, img, sp, seed + i, control) for i, (img, sp) in enumerate(zip(images, spacings))]
    fr = np.array([s.fraction for s in scores])
    clean = np.array([s.clean_fraction for s in scores])
    if not keep:
        scores = []
    return OverlayFluid(fr, clean, float(fr.max()), float(fr.mean()), int(fr.argmax()),
                        int((fr > TARGET_FRACTION).sum()), scores)
