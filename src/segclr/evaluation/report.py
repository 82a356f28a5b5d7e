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
    axes[0, 0].set(xlabel="step", ylabel="supervised loss", title="supervised loss")
    if con:
        for key, values in sorted(con.items()):
            s, v = zip(*values)
            axes[0, 1].plot(s, v, label=key.split("/")[1])
        axes[0, 1].set(xlabel="step", ylabel="contrastive loss", title="contrastive loss")
        axes[0, 1].legend()
    if title:
        fig.suptitle(title)
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


def plot_domain_montage(panels: list[tuple], out_png: Path) -> None:
    """Side-by-side B-scans of each domain (the same anatomy), with a zoomed row below.

    A panel is ``(name, image, mask[, spacing_um])``. With a (row, column) spacing the B-scan is
    drawn in millimetres, so devices on different pixel grids appear at true physical aspect,
    and the zoom shows the same physical window (0.4 mm deep, 1.5 mm wide) on every device.
    """
    n = len(panels)
    extents = []
    for panel in panels:
        img = panel[1]
        sp = panel[3] if len(panel) > 3 and panel[3] is not None else None
        h, w = img.shape
        extents.append((w * sp[1] / 1000.0, h * sp[0] / 1000.0) if sp else (float(w), float(h)))
    width_mm, depth_mm = max(e[0] for e in extents), max(e[1] for e in extents)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 4.2 * depth_mm / width_mm * 1.6 + 2.6), squeeze=False,
                             gridspec_kw={"height_ratios": [depth_mm / width_mm * 1.6, 0.6]})
    for c, panel in enumerate(panels):
        name, img = panel[0], panel[1]
        sp = panel[3] if len(panel) > 3 else None
        h, w = img.shape
        ax = axes[0, c]
        if sp:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, extent=(0, w * sp[1] / 1000, h * sp[0] / 1000, 0))
            ax.set_xlim(0, width_mm)
            ax.set_ylim(depth_mm, 0)
            ax.set_aspect(1.6)  # depth stretched 1.6x on every panel alike, as OCT viewers do
            ax.set_title(f"{name}\n{h} x {w} px of {sp[0]:.2f} x {sp[1]:.2f} um (axes in mm)", fontsize=9)
            ax.tick_params(labelsize=7)
            y0, x0 = int(round(0.55 / (sp[0] / 1000))), int(round(2.5 / (sp[1] / 1000)))
            dy, dx = int(round(0.4 / (sp[0] / 1000))), int(round(1.5 / (sp[1] / 1000)))
        else:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(name)
            ax.axis("off")
            y0, x0, dy, dx = int(h * 0.3), int(w * 0.4), h // 5, w // 4
        axes[1, c].imshow(img[y0:y0 + dy, x0:x0 + dx], cmap="gray", vmin=0, vmax=1, aspect="auto")
        axes[1, c].set_title("zoom 0.4 x 1.5 mm (speckle, noise, pixel grid)" if sp else "zoom", fontsize=8)
        axes[1, c].axis("off")
    save_figure(fig, Path(out_png))


def domain_preview(out_png: Path, seed: int = 0, patient: int = 1, slice_index: int = 5,
                   geometry: str = "native") -> None:
    """The same real B-scan as every domain (the source and each simulated device).

    With ``geometry="native"`` each panel is the device's own grid, drawn at true physical
    aspect (axes in mm) with its pixel size in the title.
    """
    from segclr.data.domains import DomainBank, all_domain_names

    bank = DomainBank(seed, geometry=geometry)
    panels = []
    for name in all_domain_names():
        vol = next(v for v in bank.domain(name) if v.patient == patient)
        label = name if name == "spectralis" else f"{name} (simulated)"
        panels.append((label, vol.images[slice_index], vol.masks[slice_index], vol.spacing_um))
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
