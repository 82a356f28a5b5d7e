"""Bool stamps for the synthetic overlays: two tiny bitmap fonts, glyphs, boxes, scale bars, a texture.

The shapes that :mod:`segclr.data.overlays_aug` burns into labeled crops (and that
:mod:`segclr.evaluation.overlay_check` draws into test B-scans), as NumPy arrays with no
randomness of their own except where a :class:`random.Random` is passed in. Fonts: hand-drawn
3x5 digits and capitals and 48 letter-like 5x7 glyphs (plus a space) built once from strokes
with a fixed seed, so no font files are needed; :func:`text_stamp` lays glyph indices out as a
text line, scaled by whole pixels on each axis. Shapes: an arrow, an L and a ring (the
orientation glyphs), a box (outline or filled) and a scale bar with end ticks and an optional
leg, each a bool array of its own size; :func:`fundus_texture` is a smooth noise picture for
insets. Choosing, placing and drawing them (:func:`~segclr.data.overlays_aug.paste`) is left
to :mod:`segclr.data.overlays_aug`, which re-exports every public name here.
"""

from __future__ import annotations

import functools
import random

import numpy as np

__all__ = ["text_stamp", "arrow_stamp", "ell_stamp", "ring_stamp", "box_stamp", "scale_bar_stamp", "font_size",
           "font_chars", "random_text", "fundus_texture"]

# --------------------------------------------------------------------------- the bitmap fonts
# 3x5 digits and capitals, rows top to bottom ('#' = ink).
_FONT3 = {
    "0": "###,#.#,#.#,#.#,###", "1": ".#.,##.,.#.,.#.,###", "2": "###,..#,###,#..,###",
    "3": "###,..#,.##,..#,###", "4": "#.#,#.#,###,..#,..#", "5": "###,#..,###,..#,###",
    "6": "###,#..,###,#.#,###", "7": "###,..#,.#.,.#.,.#.", "8": "###,#.#,###,#.#,###",
    "9": "###,#.#,###,..#,###", "A": ".#.,#.#,###,#.#,#.#", "B": "##.,#.#,##.,#.#,##.",
    "C": ".##,#..,#..,#..,.##", "D": "##.,#.#,#.#,#.#,##.", "E": "###,#..,##.,#..,###",
    "F": "###,#..,##.,#..,#..", "H": "#.#,#.#,###,#.#,#.#", "I": "###,.#.,.#.,.#.,###",
    "L": "#..,#..,#..,#..,###", "M": "#.#,###,###,#.#,#.#", "N": "##.,#.#,#.#,#.#,#.#",
    "O": ".#.,#.#,#.#,#.#,.#.", "P": "##.,#.#,##.,#..,#..", "R": "##.,#.#,##.,#.#,#.#",
    "S": ".##,#..,.#.,..#,##.", "T": "###,.#.,.#.,.#.,.#.", "U": "#.#,#.#,#.#,#.#,###",
    "V": "#.#,#.#,#.#,#.#,.#.", "X": "#.#,#.#,.#.,#.#,#.#", "-": "...,...,###,...,...",
    ":": "...,.#.,...,.#.,...", "/": "..#,..#,.#.,#..,#..", ".": "...,...,...,...,.#.",
    " ": "...,...,...,...,...",
}


def _strokes5x7() -> list[np.ndarray]:
    """The strokes 5x7 glyphs are built from: bars, half-height verticals, diagonals, a dot."""
    def seg(points):
        s = np.zeros((7, 5), dtype=bool)
        for r, c in points:
            s[r, c] = True
        return s
    return [
        seg([(0, c) for c in range(5)]), seg([(3, c) for c in range(5)]), seg([(6, c) for c in range(5)]),
        seg([(r, 0) for r in range(4)]), seg([(r, 0) for r in range(3, 7)]),
        seg([(r, 4) for r in range(4)]), seg([(r, 4) for r in range(3, 7)]),
        seg([(r, 2) for r in range(7)]),
        seg([(0, 0), (1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 4)]),
        seg([(0, 4), (1, 3), (2, 3), (3, 2), (4, 1), (5, 1), (6, 0)]),
        seg([(0, 1), (0, 2), (0, 3), (1, 0), (1, 4)]),           # rounded top
        seg([(6, 1), (6, 2), (6, 3), (5, 0), (5, 4)]),           # rounded bottom
        seg([(5, 2), (6, 2)]),
    ]


def _font5_glyphs(n: int = 48, seed: int = 20240) -> np.ndarray:
    """``n`` distinct letter-like 5x7 glyphs, each the union of 2-5 strokes (fixed seed: the same font always)."""
    strokes = _strokes5x7()
    rng = np.random.default_rng(seed)
    glyphs, seen = [np.zeros((7, 5), dtype=bool)], {b""}  # glyph 0 is the space
    while len(glyphs) < n + 1:
        pick = rng.choice(len(strokes), size=int(rng.integers(2, 6)), replace=False)
        g = np.any([strokes[i] for i in pick], axis=0)
        key = np.packbits(g).tobytes()
        if key not in seen:
            seen.add(key)
            glyphs.append(g)
    return np.stack(glyphs)


_FONT3_CHARS = "".join(_FONT3)
_FONT3_ARRAY = np.stack([np.array([[ch == "#" for ch in row] for row in _FONT3[k].split(",")]) for k in _FONT3])
_FONT5_ARRAY = _font5_glyphs()
_FONTS_NP = {3: _FONT3_ARRAY, 5: _FONT5_ARRAY}
def font_size(which: int) -> tuple[int, int]:
    """(rows, columns) of one glyph of font ``which`` (3 or 5)."""
    return tuple(_FONTS_NP[which].shape[1:])  # type: ignore[return-value]


def font_chars(text: str) -> list[int]:
    """Glyph indices of ``text`` in the 3x5 font (unknown characters become spaces)."""
    return [_FONT3_CHARS.index(ch) if ch in _FONT3 else _FONT3_CHARS.index(" ") for ch in text.upper()]


def random_text(rng: random.Random, which: int, n: int, space_prob: float = 0.15) -> list[int]:
    """``n`` random glyph indices of font ``which``; index of the space glyph with ``space_prob`` (never first)."""
    space = _FONT3_CHARS.index(" ") if which == 3 else 0
    count = len(_FONTS_NP[which])
    out = []
    for i in range(n):
        if i > 0 and rng.random() < space_prob:
            out.append(space)
        else:
            k = rng.randrange(count - 1)
            out.append(k + (k >= space))  # any glyph but the space
    return out


# --------------------------------------------------------------------------- stamps (bool arrays)
def text_stamp(codes: list[int], which: int, sy: int = 1, sx: int = 1) -> np.ndarray:
    """A text line: glyphs of font ``which`` side by side with one blank font column between them,
    each font pixel ``sy`` x ``sx`` image pixels. Bool (rows, columns)."""
    font = _FONTS_NP[which]
    gh, gw = font.shape[1:]
    n = len(codes)
    line = np.zeros((gh, n, gw + 1), dtype=bool)
    line[:, :, :gw] = font[codes].transpose(1, 0, 2)
    line = line.reshape(gh, n * (gw + 1))[:, :-1]
    if sy > 1:
        line = np.repeat(line, sy, axis=0)
    if sx > 1:
        line = np.repeat(line, sx, axis=1)
    return line


@functools.lru_cache(maxsize=512)
def _arrow(size: int, thickness: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    c = (size - 1) / 2.0
    head = max(2, size * 2 // 5)
    shaft = (np.abs(yy - c) <= thickness / 2.0) & (xx < size - head)
    tip = (xx >= size - head - 1) & (np.abs(yy - c) <= (size - 1 - xx) * c / head + 0.5)
    return shaft | tip


def arrow_stamp(size: int, thickness: int, direction: int) -> np.ndarray:
    """An arrow in a ``size`` x ``size`` square pointing right, up, left or down (``direction`` 0-3)."""
    return np.rot90(_arrow(size, thickness), direction % 4)


def ell_stamp(size: int, thickness: int, orientation: int) -> np.ndarray:
    """An L (two bars of ``thickness`` along two edges of the square), rotated by ``orientation`` x 90 degrees."""
    s = np.zeros((size, size), dtype=bool)
    s[:, :thickness] = True
    s[size - thickness:, :] = True
    return np.rot90(s, orientation % 4)


@functools.lru_cache(maxsize=512)
def ring_stamp(size: int, thickness: int, dot: bool) -> np.ndarray:
    """A ring of outer diameter ``size``; ``dot``: with a filled centre of a third of the diameter."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    c = (size - 1) / 2.0
    r = np.sqrt((yy - c) ** 2 + (xx - c) ** 2)
    out = (r <= size / 2.0) & (r > size / 2.0 - thickness)
    if dot:
        out |= r <= size / 6.0
    out.flags.writeable = False  # cached: shared between calls
    return out


def box_stamp(h: int, w: int, thickness: int) -> np.ndarray:
    """A rectangle: an outline ``thickness`` wide, or filled when ``thickness`` is 0."""
    if thickness <= 0:
        return np.ones((h, w), dtype=bool)
    s = np.zeros((h, w), dtype=bool)
    s[:thickness] = True
    s[h - thickness:] = True
    s[:, :thickness] = True
    s[:, w - thickness:] = True
    return s


def scale_bar_stamp(length: int, thickness: int, tick: int, leg: int = 0) -> np.ndarray:
    """A horizontal bar with end ticks ``tick`` rows tall (bar at their bottom); ``leg`` > 0 adds a
    vertical bar of that length rising from the left end (an L-shaped scale bar)."""
    h = max(tick, thickness, leg)
    s = np.zeros((h, length), dtype=bool)
    s[h - thickness:, :] = True
    s[h - tick:, :thickness] = True
    s[h - tick:, length - thickness:] = True
    if leg > 0:
        s[h - leg:, :thickness] = True
    return s


def _resize_bilinear(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of a small 2D array (half-pixel centres, edges clamped) by two matrix products."""
    def weights(n_out: int, n_in: int) -> np.ndarray:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 2) if n_in > 1 else np.zeros(n_out, int)
        frac = (pos - lo).astype(np.float32)
        m = np.zeros((n_out, n_in), dtype=np.float32)
        m[np.arange(n_out), lo] = 1 - frac
        if n_in > 1:
            m[np.arange(n_out), lo + 1] += frac
        return m
    return weights(h, a.shape[0]) @ a.astype(np.float32) @ weights(w, a.shape[1]).T


def fundus_texture(rng: random.Random, h: int, w: int, lo: float = 0.1, span: float = 0.4) -> np.ndarray:
    """(h, w) float32 smooth noise in [lo, lo + span]: a stand-in for a fundus picture."""
    coarse = np.random.default_rng(rng.getrandbits(62)).random((max(2, h // 4), max(2, w // 4)))
    return (lo + span * _resize_bilinear(coarse, h, w)).astype(np.float32)

