"""Pictures and tables: training curves, overlays, the domain montage, Dice tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from segclr.io.atomic import atomic_path  # noqa: E402


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    with Path(path).open() as fh:
        for row in csv.DictReader(fh):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key.startswith("loss/") and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def plot_training_curves(metrics_csv: Path, out_png: Path, title: str = "") -> None:
    """Losses over steps (supervised and contrastive on separate axes)."""
    series = read_metrics(metrics_csv)
    if not series:
        return
    con = {k: v for k, v in series.items() if k.startswith("loss/con")}
    fig, axes = plt.subplots(1, 2 if con else 1, figsize=(11 if con else 5.5, 3.6), squeeze=False)
    # the total (contrastive + lambda x supervised) is in metrics.csv; plotted it would dwarf the terms
    if "loss/sup" in series:
        s, v = zip(*series["loss/sup"])
        axes[0, 0].plot(s, v, label="sup")
    axes[0, 0].set(xlabel="step", ylabel="supervised loss", title=f"{title} supervised")
    if con:
        for key, values in sorted(con.items()):
            s, v = zip(*values)
            axes[0, 1].plot(s, v, label=key.split("/")[1])
        axes[0, 1].set(xlabel="step", ylabel="contrastive loss", title=f"{title} contrastive")
        axes[0, 1].legend()
    save_figure(fig, Path(out_png))


def overlay_rgb(image: np.ndarray, mask: np.ndarray, color=(1.0, 0.2, 0.2), alpha=0.5) -> np.ndarray:
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1).astype(np.float32)
    m = mask > 0
    rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(color, dtype=np.float32)
    return rgb


def plot_overlays(rows: list[dict], out_png: Path, title: str = "") -> None:
    """One row per B-scan: image, reference overlay, then one prediction overlay per method.

    ``rows``: dicts with ``label`` (str), ``image``, ``reference`` and ``predictions``
    (method -> (mask, dice)).
    """
    methods = list(rows[0]["predictions"])
    ncol = 2 + len(methods)
    h, w = rows[0]["image"].shape
    panel_w = 3.4
    fig, axes = plt.subplots(len(rows), ncol, figsize=(panel_w * ncol, panel_w * h / w * len(rows) + 0.8),
                             squeeze=False)
    for r, row in enumerate(rows):
        panels = [(row["image"], None, row["label"]), (row["image"], row["reference"], "reference")]
        for m in methods:
            mask, d = row["predictions"][m]
            panels.append((row["image"], mask, f"{m}  Dice {'n/a' if math.isnan(d) else f'{d:.2f}'}"))
        for c, (img, mask, label) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img if mask is None else overlay_rgb(img, mask), cmap="gray", vmin=0, vmax=1)
            ax.set_title(label, fontsize=7)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, Path(out_png))


def plot_domain_montage(panels: list[tuple[str, np.ndarray, np.ndarray | None]], out_png: Path) -> None:
    """Side-by-side B-scans of each domain (the same anatomy), with an optional zoomed inset row."""
    n = len(panels)
    h, w = panels[0][1].shape
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 4.2 * (h / w) + 2.4), squeeze=False,
                             gridspec_kw={"height_ratios": [h / w, 0.5]})
    for c, (name, img, _) in enumerate(panels):
        axes[0, c].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[0, c].set_title(name)
        y0, x0 = int(h * 0.3), int(w * 0.4)
        axes[1, c].imshow(img[y0:y0 + h // 5, x0:x0 + w // 4], cmap="gray", vmin=0, vmax=1)
        axes[1, c].set_title("zoom (speckle, noise)", fontsize=8)
        for ax in axes[:, c]:
            ax.axis("off")
    save_figure(fig, Path(out_png))


def domain_preview(out_png: Path, seed: int = 0, patient: int = 1, slice_index: int = 5) -> None:
    """The same real B-scan as every domain (the source and each simulated device)."""
    from segclr.data.domains import DomainBank, all_domain_names

    bank = DomainBank(seed)
    panels = []
    for name in all_domain_names():
        vol = next(v for v in bank.domain(name) if v.patient == patient)
        label = name if name == "spectralis" else f"{name} (simulated)"
        panels.append((label, vol.images[slice_index], vol.masks[slice_index]))
    plot_domain_montage(panels, Path(out_png))


def format_table(results: dict[str, dict[str, float]], domains: list[str], digits: int = 3) -> str:
    """Markdown table: methods (rows) x domains (columns)."""
    head = "| method | " + " | ".join(domains) + " |"
    sep = "|---|" + "---|" * len(domains)
    lines = [head, sep]
    for method, per_domain in results.items():
        cells = []
        for d in domains:
            v = per_domain.get(d, float("nan"))
            cells.append("n/a" if math.isnan(v) else f"{v:.{digits}f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
