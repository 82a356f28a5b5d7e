"""The demo's overlay figure: a representative set of test B-scans, errors in their own colours.

Rows, chosen from every test B-scan of a domain without looking at the picture:

* the **best**, **median** and **worst** B-scan with fluid in the reference, ranked by the mean
  Dice of the methods shown (so no method's best case is picked for it);
* one B-scan whose reference is **empty** (the first by patient and slice), where any
  prediction is a false positive and the nnU-Net rule scores 0 (or NaN when nothing is predicted).

Columns: the image with a scale bar, the reference, then per method its prediction coloured as
true positive (green), false positive (magenta) and false negative (cyan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from segclr.evaluation.metrics import confusion, dice_from_counts  # noqa: E402
from segclr.evaluation.report import save_figure  # noqa: E402

COLOURS = {"tp": (0.1, 0.85, 0.2), "fp": (1.0, 0.1, 0.9), "fn": (0.1, 0.85, 1.0), "ref": (1.0, 0.75, 0.1)}
SCALE_BAR_UM = 500


@dataclass
class Case:
    label: str                           # e.g. "patient 9 slice 4"
    image: np.ndarray                    # (H, W) float [0, 1]
    reference: np.ndarray                # (H, W) int
    predictions: dict[str, np.ndarray]   # method -> (H, W) int

    def scores(self, method: str) -> tuple[float, int, int]:
        """(Dice, false-positive pixels, false-negative pixels) of ``method`` for the fluid class."""
        tp, fp, fn = confusion(self.predictions[method], self.reference, 1)
        return dice_from_counts(tp, fp, fn), fp, fn

    @property
    def mean_dice(self) -> float:
        values = [self.scores(m)[0] for m in self.predictions]
        finite = [v for v in values if not math.isnan(v)]
        return float(np.mean(finite)) if finite else float("nan")


def representative(cases: list[Case]) -> list[tuple[str, Case]]:
    """[("best", c), ("median", c), ("worst", c), ("empty reference", c)], those that exist."""
    with_fluid = sorted((c for c in cases if c.reference.any()), key=lambda c: -c.mean_dice)
    rows: list[tuple[str, Case]] = []
    if with_fluid:
        picks = {"best": 0, "median": (len(with_fluid) - 1) // 2, "worst": len(with_fluid) - 1}
        seen: set[int] = set()
        for name, k in picks.items():
            if k not in seen:
                seen.add(k)
                rows.append((name, with_fluid[k]))
    empty = [c for c in cases if not c.reference.any()]
    if empty:
        rows.append(("empty reference", empty[0]))
    return rows


def error_rgb(image: np.ndarray, pred: np.ndarray, ref: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Grey image with TP green, FP magenta and FN cyan."""
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1).astype(np.float32)
    p, r = pred > 0, ref > 0
    for mask, key in ((p & r, "tp"), (p & ~r, "fp"), (~p & r, "fn")):
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(COLOURS[key], dtype=np.float32)
    return rgb


def _reference_rgb(image: np.ndarray, ref: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1).astype(np.float32)
    m = ref > 0
    rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(COLOURS["ref"], dtype=np.float32)
    return rgb


def _scale_bar(ax, width: int, height: int, lateral_um: float | None) -> None:
    if not lateral_um:
        return
    length = SCALE_BAR_UM / lateral_um
    x0, y0 = width * 0.04, height * 0.93
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=3.5, foreground="black")]  # readable on any background
    ax.plot([x0, x0 + length], [y0, y0], color="white", linewidth=2.5, solid_capstyle="butt", path_effects=outline)
    ax.text(x0 + length / 2, y0 - height * 0.03, f"{SCALE_BAR_UM} µm", color="white", fontsize=6,
            ha="center", va="bottom", path_effects=outline)


def plot_representative(cases: list[Case], out_png: Path, title: str = "",
                        lateral_um: float | None = None) -> list[str]:
    """Draw :func:`representative` rows of ``cases`` into ``out_png``; returns the row labels."""
    rows = representative(cases)
    if not rows:
        return []
    methods = list(rows[0][1].predictions)
    ncol, panel_w = 2 + len(methods), 3.4
    h, w = rows[0][1].image.shape
    fig, axes = plt.subplots(len(rows), ncol, figsize=(panel_w * ncol, (panel_w * h / w + 0.3) * len(rows) + 0.5),
                             squeeze=False, layout="constrained")
    for r, (kind, case) in enumerate(rows):
        ax = axes[r, 0]
        ax.imshow(case.image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{kind}: {case.label}", fontsize=7)
        _scale_bar(ax, case.image.shape[1], case.image.shape[0], lateral_um)
        axes[r, 1].imshow(_reference_rgb(case.image, case.reference))
        axes[r, 1].set_title(f"reference ({int((case.reference > 0).sum())} fluid px)", fontsize=7)
        for c, m in enumerate(methods, start=2):
            d, fp, fn = case.scores(m)
            axes[r, c].imshow(error_rgb(case.image, case.predictions[m], case.reference))
            dice_text = "n/a (both empty)" if math.isnan(d) else f"{d:.2f}"
            axes[r, c].set_title(f"{m}: Dice {dice_text}, FP {fp} px, FN {fn} px", fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    legend = "green: true positive, magenta: false positive, cyan: false negative (missed); reference in orange"
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=8)
    save_figure(fig, Path(out_png))
    return [f"{kind}: {case.label}" for kind, case in rows]


__all__ = ["Case", "plot_representative", "representative", "error_rgb"]
