"""Synthetic burned-in overlays for labeled crops: text, glyphs, boxes, scale bars, an inset image.

Real OCT exports carry graphics burned into the pixels: an orientation glyph, a scale bar, text
(patient, scan pattern, "200 um"), a fundus inset, boxes around regions. None of that is in the
embedded training data, and models trained on it marked such bright, sharp-edged shapes in the
dark background as fluid. This augmentation draws random shapes of those kinds into labeled crops
and sets their label to background (0), so the network learns that they are not fluid. The fonts and
shapes themselves are built in :mod:`segclr.data.overlay_stamps`; this module chooses, places
and draws them.

``burn_overlays(images, masks, p, generator)``: each crop of the batch gets overlays with
probability ``p``. A hit crop gets one or more of

* **text** lines from a tiny procedural bitmap font (hand-drawn 3x5 digits/capitals and
  stroke-built 5x7 glyphs, no font files), scaled up by 1-3 pixels per font pixel on each axis;
* an **orientation glyph**: an arrow (4 directions), an L shape (4 orientations) or a ring
  (with or without a centre dot);
* a **box**: outline (1-2 px) or filled;
* a **scale bar**: a line with end ticks, sometimes with a vertical leg and a number above it;
* an **inset image**: a strided, contrast-changed copy of part of the crop or a smooth noise
  texture (a fundus-like picture), with a bright border.

Shapes are sized relative to the crop, bright (0.85-1.0) or sometimes dark (0-0.08), and placed
preferentially in dark rows (row mean, smoothed over 9 rows, in the lowest 30 % of the crop's
range of row means), but anywhere with some probability. Half of the hit crops get soft edges
(the overlay blended through a 3x3 box filter, as after resampling an export). Pixels under an
overlay (blend weight > 0) get mask 0; all other pixels of the image and mask are exactly the
input's.

Randomness: one integer is drawn from ``generator`` (a ``torch.Generator`` on any device; the
global torch generator when None) and seeds a Python :class:`random.Random` that makes every
further choice, so the result is a deterministic function of the generator state and the draw
costs one generator call per batch. With ``p == 0`` nothing is drawn.

Cost: the hit crops are drawn on one NumPy copy of the batch (a few slice writes per shape), which
becomes the output. ``benchmarks/bench_overlays.py --time-augment`` measured a median of 2.2-2.4 ms
(p = 1) and 1.2-1.4 ms (p = 0.5) for 8 crops of 128 x 128 on the project's 2-core CPU while it was
shared with other jobs (load average about 5).
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

# the fonts and shapes live in overlay_stamps; re-exported here, where callers have always imported them
from segclr.data.overlay_stamps import (arrow_stamp, box_stamp, ell_stamp, font_chars, font_size, fundus_texture,
                                        random_text, ring_stamp, scale_bar_stamp, text_stamp)

__all__ = ["OverlayAugment", "Overlaid", "burn_overlays", "text_stamp", "arrow_stamp", "ell_stamp",
           "ring_stamp", "box_stamp", "scale_bar_stamp", "font_size", "font_chars", "random_text", "paste",
           "fundus_texture"]


# --------------------------------------------------------------------------- drawing
def paste(image: np.ndarray, mask: np.ndarray | None, overlay: np.ndarray, top: int, left: int,
          stamp: np.ndarray, value: float | np.ndarray, soft: bool = False) -> None:
    """Draw ``stamp`` (bool) into ``image`` (C, H, W) in place with its top-left corner at (``top``, ``left``),
    clipped to the image; ``value``: a grey value or an array of the stamp's shape. ``soft``: blended through
    a 3 x 3 box filter (one pixel wider on each side). Sets ``mask`` (H, W) to 0 and ``overlay`` (H, W) to
    True wherever the blend weight is > 0; other pixels stay exactly as they were."""
    if soft:
        sh, sw = stamp.shape
        p = np.zeros((sh + 4, sw + 4), dtype=np.float32)
        p[2:-2, 2:-2] = stamp
        r = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
        alpha = (r[:-2] + r[1:-1] + r[2:]) * np.float32(1.0 / 9.0)       # (sh + 2, sw + 2)
        if isinstance(value, np.ndarray):
            v = np.empty((sh + 2, sw + 2), dtype=np.float32)
            v[1:-1, 1:-1] = value
            v[0], v[-1], v[:, 0], v[:, -1] = v[1], v[-2], v[:, 1], v[:, -2]  # replicate the border
            value = v
        stamp, top, left = alpha, top - 1, left - 1
    sh, sw = stamp.shape
    h, w = image.shape[-2:]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + sh, h), min(left + sw, w)
    if y0 >= y1 or x0 >= x1:
        return
    ys, xs = slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)
    s = stamp[ys, xs]
    if isinstance(value, np.ndarray):
        value = value[ys, xs]
    region = image[:, y0:y1, x0:x1]
    if soft:
        region *= 1.0 - s
        region += s * value
        on = s > 0
    else:
        np.copyto(region, value, where=s)
        on = s
    overlay[y0:y1, x0:x1] |= on
    if mask is not None:
        np.copyto(mask[y0:y1, x0:x1], 0, where=on)


class Overlaid(NamedTuple):
    images: Tensor            # (B, C, H, W), same dtype as the input
    masks: Tensor | None      # (B, H, W), 0 under overlays
    overlay: Tensor           # (B, H, W) bool: pixels whose image value may differ from the input


_BRIGHT_PROB = 0.85          # else a dark overlay
_DARK_ROWS_PROB = 0.85       # placement weighted to dark rows; else uniform over the crop
_SOFT_PROB = 0.5             # soft (resampled-looking) edges


def _colour(rng: random.Random) -> float:
    return rng.uniform(0.85, 1.0) if rng.random() < _BRIGHT_PROB else rng.uniform(0.0, 0.08)


def _inset(rng: random.Random, crop: np.ndarray, ih: int, iw: int) -> np.ndarray:
    """(ih, iw) values in [0, 1]: a strided contrast-changed piece of ``crop`` (H, W) or a smooth noise texture,
    with a bright 1-2 px border."""
    h, w = crop.shape
    step = rng.choice((2, 3))
    if rng.random() < 0.5 and ih * step <= h and iw * step <= w:
        y, x = rng.randrange(h - ih * step + 1), rng.randrange(w - iw * step + 1)
        patch = crop[y:y + ih * step:step, x:x + iw * step:step]
        mean = patch.mean()
        patch = (patch - mean) * rng.uniform(0.5, 2.0) + mean + rng.uniform(-0.15, 0.15)
    else:
        patch = fundus_texture(rng, ih, iw, rng.uniform(0.05, 0.4), rng.uniform(0.2, 0.5))
    patch = np.clip(patch, 0.0, 1.0).astype(np.float32)
    patch[box_stamp(ih, iw, rng.randint(1, 2))] = rng.uniform(0.85, 1.0)
    return patch


def _place(rng: random.Random, cum: list[float] | None, h: int, w: int, sh: int, sw: int) -> tuple[int, int]:
    """Top-left corner of a ``sh`` x ``sw`` shape: centre row from the dark-row weights (or uniform), column uniform."""
    if cum is not None and rng.random() < _DARK_ROWS_PROB:
        row = rng.choices(range(h), cum_weights=cum)[0]
    else:
        row = rng.randrange(h)
    return row - sh // 2, rng.randrange(w) - sw // 2


def _dark_rows(crop: np.ndarray) -> list[float] | None:
    """Cumulative placement weights of the rows of ``crop`` (H, W): 1 for rows whose mean, smoothed over 9 rows,
    lies in the lowest 30 % of the crop's range of row means, else 0; None when that selects nothing."""
    rows = crop.sum(axis=1)  # sums, not means: the rule below is scale-free
    k = np.ones(9, dtype=np.float32)
    rows = np.convolve(rows, k, "same") / np.convolve(np.ones_like(rows), k, "same")
    lo, hi = rows.min(), rows.max()
    cum = np.cumsum(rows <= lo + 0.3 * (hi - lo))
    return cum.tolist() if cum[-1] > 0 else None


def _draw_crop(rng: random.Random, image: np.ndarray, mask: np.ndarray | None, overlay: np.ndarray) -> None:
    """One hit crop (``image`` (C, H, W)): draw a random set of overlays in place."""
    h, w = image.shape[-2:]
    side = min(h, w)
    crop = image[0] if image.shape[0] == 1 else image.mean(axis=0)
    cum = _dark_rows(crop)
    soft = rng.random() < _SOFT_PROB

    def put(stamp, value, top_left=None):
        top, left = top_left if top_left is not None else _place(rng, cum, h, w, *stamp.shape)
        paste(image, mask, overlay, top, left, stamp, value, soft)
        return top, left

    kinds = [k for k, prob in (("glyph", 0.5), ("text", 0.6), ("box", 0.35), ("bar", 0.4), ("inset", 0.25))
             if rng.random() < prob]
    if not kinds:
        kinds = [rng.choice(("glyph", "text", "box", "bar", "inset"))]
    for kind in kinds:
        if kind == "glyph":
            g = rng.randint(max(5, int(0.06 * side)), max(6, int(0.22 * side)))
            t = rng.randint(1, max(1, g // 6))
            shape = rng.randrange(3)
            if shape == 0:
                stamp = arrow_stamp(g, t, rng.randrange(4))
            elif shape == 1:
                stamp = ell_stamp(g, t, rng.randrange(4))
            else:
                stamp = ring_stamp(g, t, rng.random() < 0.5)
            put(stamp, _colour(rng))
        elif kind == "text":
            for _ in range(1 if rng.random() < 0.7 else 2):
                which = rng.choice((3, 5))
                gw = font_size(which)[1]
                sy, sx = rng.choice((1, 1, 2, 2, 3)), rng.choice((1, 1, 2, 2, 3))
                n_max = max(1, int((0.8 * w + sx) // ((gw + 1) * sx)))
                n = rng.randint(min(2, n_max), min(14, n_max))
                put(text_stamp(random_text(rng, which, n), which, sy, sx), _colour(rng))
        elif kind == "box":
            bh = rng.randint(max(3, int(0.06 * h)), max(4, int(0.35 * h)))
            bw = rng.randint(max(3, int(0.1 * w)), max(4, int(0.5 * w)))
            put(box_stamp(bh, bw, 0 if rng.random() < 0.35 else rng.randint(1, 2)), _colour(rng))
        elif kind == "bar":
            length = rng.randint(max(4, int(0.12 * w)), max(5, int(0.45 * w)))
            thick = rng.randint(1, 3)
            tick = rng.randint(thick + 1, thick + 2 + int(0.06 * h))
            leg = rng.randint(max(3, int(0.1 * h)), max(4, int(0.35 * h))) if rng.random() < 0.3 else 0
            colour = _colour(rng)
            top, left = put(scale_bar_stamp(length, thick, tick, leg), colour)
            if rng.random() < 0.4:  # its number ("200") above the bar
                s = rng.choice((1, 2))
                label = text_stamp(random_text(rng, 3, rng.randint(2, 4), 0.0), 3, s, s)
                put(label, colour, (top - label.shape[0] - 2, left + rng.randrange(max(1, length - label.shape[1]))))
        else:  # inset
            ih = rng.randint(max(4, int(0.18 * h)), max(5, int(0.4 * h)))
            iw = rng.randint(max(4, int(0.18 * w)), max(5, int(0.4 * w)))
            put(np.ones((ih, iw), dtype=bool), _inset(rng, crop, ih, iw))


def burn_overlays(images: Tensor, masks: Tensor | None, p: float,
                  generator: torch.Generator | None = None) -> Overlaid:
    """Burn synthetic overlays into each crop with probability ``p`` (see the module docstring).

    ``images`` (B, C, H, W) float in [0, 1], ``masks`` (B, H, W) integer or None. The inputs are not
    modified; the outputs are new tensors. ``p == 0`` draws nothing and returns copies of the inputs.
    The hit crops are drawn on the CPU (NumPy: many tiny operations) and copied back to their device.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    b, _, h, w = images.shape
    if masks is not None and masks.shape != (b, h, w):
        raise ValueError(f"masks must be (B, H, W) = {(b, h, w)}, got {tuple(masks.shape)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"overlay probability must lie in [0, 1], got {p}")
    if p == 0.0 or b == 0:
        return Overlaid(images.clone(), None if masks is None else masks.clone(),
                        torch.zeros(b, h, w, dtype=torch.bool, device=images.device))
    gen_device = generator.device if generator is not None else torch.device("cpu")
    rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device).item()))
    hits = [i for i in range(b) if rng.random() < p]

    # one float32 CPU copy of the batch (and of the masks), drawn on in place and handed back as the outputs
    x = np.array(images.detach().to("cpu", torch.float32).numpy(), copy=True)
    m = None if masks is None else np.array(masks.detach().cpu().numpy(), copy=True)
    ov = np.zeros((b, h, w), dtype=bool)
    for i in hits:
        _draw_crop(rng, x[i], None if m is None else m[i], ov[i])
    out = torch.from_numpy(x).to(images.device, images.dtype)
    out_masks = None if m is None else torch.from_numpy(m).to(masks.device)
    return Overlaid(out, out_masks, torch.from_numpy(ov).to(images.device))


class OverlayAugment(torch.nn.Module):
    """``OverlayAugment(p)(images, masks=None, generator=None) -> (images, masks)``: :func:`burn_overlays`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"overlay probability must lie in [0, 1], got {p}")
        self.p = float(p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, images: Tensor, masks: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        out = burn_overlays(images, masks, self.p, generator)
        return out.images, out.masks
