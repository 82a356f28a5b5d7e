"""``segclr predict --report``: one self-contained HTML page to check and sign off a prediction run.

The page (``report.html`` next to the predictions) needs nothing but a browser: styles, the
table-sorting script and every image are inside the file (images as ``data:`` URIs), and it
loads nothing from the network. It has

* **the run**: the model card's summary (what the model was trained on, its measured Dice per
  domain, the research-use notice), where the inputs and outputs are, and a table of all volumes
  (fluid per class in nl, affected B-scans, domain-shift score) that sorts on a click of any header;
* **one section per volume**: fluid per class in nl and the affected B-scans; an en-face map of
  fluid thickness (um of fluid in each A-scan, all fluid classes together) at the true physical
  aspect when the spacing is known, with a colour bar; the three B-scans with the most fluid,
  with the predicted outline over the image; the domain-shift score against its threshold, in
  plain words.

It stays usable for hundreds of volumes: the images are small (B-scan thumbnails
:data:`THUMB_WIDTH` px wide, JPEG; maps at most :data:`MAP_SIZE` px, PNG; about 70 kB per
volume with real Spectralis B-scans, so about 14 MB for 200 volumes, which headless Chromium loads and
decodes in about 2 s), they load lazily, and the page is HTML text with many small images, never one large one.

The report is built from what is on disk after prediction: the input volumes and the label
volumes just written (read back one at a time, so memory does not grow with the run).

B-scans are numbered from 1 (the first B-scan of the volume, array index 0, is B-scan 1).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from segclr import __version__
from segclr.io.atomic import atomic_write_text

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


# ----------------------------------------------------------------------------- the report
@dataclass
class _Entry:
    anchor: str
    row: dict
    section: str


class HtmlReport:
    """Collects one section per volume (:meth:`add_volume`), then writes the page (:meth:`write`).

    ``classes``: foreground class names in label order (label 1 first); ``model``: the dict of
    :func:`segclr.inference.packaged.card_summary`; ``run``: extra facts about the run shown on top
    (e.g. ``{"input": ..., "output": ...}``).
    """

    def __init__(self, classes: list[str], model: dict, run: dict | None = None, title: str = "segclr report"):
        self.classes = list(classes)
        self.model = model
        self.run = dict(run or {})
        self.title = title
        self.entries: list[_Entry] = []

    # ------------------------------------------------------------------ one volume
    def add_volume(self, case: str, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   spacing_mm: tuple[float, float, float] | None, row: dict | None = None,
                   names: Sequence[str] | None = None) -> dict:
        """Render one volume's section. ``images``: its B-scans, float in [0, 1]; ``masks``: labels of
        the same shapes; ``row``: the fluid-volume CSV row (fluid, shift); returns the table row."""
        from segclr.inference.volumes import fluid_statistics

        row = dict(row or {})
        labels = {i + 1: c for i, c in enumerate(self.classes)}
        if "total_fluid_voxels" not in row:
            row.update(fluid_statistics(masks, spacing_mm, labels))
        anchor = f"v{len(self.entries) + 1}"
        n = len(masks)
        fluid_px = np.array([int((np.asarray(m) > 0).sum()) for m in masks])
        per_class = {c: [i for i, m in enumerate(masks) if (np.asarray(m) == label).any()] for label, c in labels.items()}
        names = list(names) if names is not None else None

        def bscan_label(i: int) -> str:
            return f"B-scan {i + 1}" + (f" ({names[i]})" if names and i < len(names) else "")

        # fluid table
        trs = []
        for c in self.classes:
            trs.append(f"<tr><td>{_e(c)}</td><td class=num>{_fmt(row.get(f'{c}_nl'), 3)}</td>"
                       f"<td class=num>{len(per_class[c])}</td><td>{_e(bscan_ranges(per_class[c]))}</td></tr>")
        if len(self.classes) > 1:
            any_fluid = [i for i in range(n) if fluid_px[i] > 0]
            trs.append(f"<tr class=total><td>all fluid</td><td class=num>{_fmt(row.get('total_fluid_nl'), 3)}</td>"
                       f"<td class=num>{len(any_fluid)}</td><td>{_e(bscan_ranges(any_fluid))}</td></tr>")
        nl_note = "" if row.get("total_fluid_nl") is not None else \
            "<p class=note>Voxel spacing unknown: no volumes in nl (pixel counts are in the CSV).</p>"
        fluid_html = ("<table class=fluid><thead><tr><th>class</th><th>fluid (nl)</th><th>B-scans</th>"
                      "<th>affected B-scans</th></tr></thead><tbody>" + "".join(trs) + "</tbody></table>" + nl_note)

        # en-face map
        shapes = {np.asarray(m).shape for m in masks}
        if len(shapes) == 1 and n:
            axial_um = spacing_mm[1] * 1000.0 if spacing_mm is not None and spacing_mm[1] else None
            thick = enface_thickness(masks, axial_um)
            unit = "&micro;m" if axial_um else "px"
            vmax = float(thick.max())
            scale_max = vmax if vmax > 0 else (axial_um or 1.0)
            w, h, physical = map_size(n, thick.shape[1], spacing_mm)
            png = enface_png(thick, scale_max, (w, h))
            if physical:
                aspect = (f"true physical aspect: {thick.shape[1] * spacing_mm[2]:.2f} mm wide (A-scans) x "
                          f"{n * spacing_mm[0]:.2f} mm high (B-scans)")
            else:
                aspect = "voxel spacing unknown: not to physical scale, thickness in pixels"
            map_html = (
                f"<figure class=map><figcaption>En-face fluid thickness ({unit}), all classes</figcaption>"
                f"<img src=\"{_data_uri(png, 'image/png')}\" width={w} height={h} loading=lazy decoding=async "
                f"alt=\"en-face fluid thickness map of {_e(case)}\">"
                f"<div class=cbar style=\"width:{max(w, 120)}px\"></div>"
                f"<div class=cticks style=\"width:{max(w, 120)}px\"><span>0</span>"
                f"<span>{_fmt(scale_max / 2, 0 if axial_um else 1)}</span>"
                f"<span>{_fmt(scale_max, 0 if axial_um else 1)} {unit}</span></div>"
                f"<p class=note>Top row: B-scan 1; left: A-scan 1. {_e(aspect)}. "
                f"Maximum {_fmt(vmax, 0 if axial_um else 1)} {unit}.</p></figure>")
        else:
            map_html = "<p class=note>No en-face map: the B-scans of this volume differ in size.</p>"

        # top B-scans
        order = [int(i) for i in np.argsort(-fluid_px, kind="stable") if fluid_px[i] > 0][:TOP_BSCANS]
        if order:
            grey = display_range(images)
            thumbs = []
            for i in order:
                jpg = outline_thumbnail(images[i], masks[i], len(self.classes) + 1, grey)
                tw = min(THUMB_WIDTH, np.asarray(images[i]).shape[1])
                th = max(1, round(np.asarray(images[i]).shape[0] * tw / np.asarray(images[i]).shape[1]))
                frac = 100.0 * fluid_px[i] / max(np.asarray(masks[i]).size, 1)
                thumbs.append(
                    f"<figure class=bscan><img src=\"{_data_uri(jpg, 'image/jpeg')}\" width={tw} height={th} "
                    f"loading=lazy decoding=async alt=\"{_e(bscan_label(i))} of {_e(case)} with predicted outline\">"
                    f"<figcaption>{_e(bscan_label(i))}: {fluid_px[i]} fluid px ({frac:.2f} %)</figcaption></figure>")
            legend = " ".join(f"<span class=swatch style=\"background:rgb{CLASS_COLOURS[k % len(CLASS_COLOURS)]}\">"
                              f"</span>{_e(c)}" for k, c in enumerate(self.classes))
            top_html = (f"<div class=thumbs>{''.join(thumbs)}</div><p class=note>The {len(order)} B-scan(s) with "
                        f"the most predicted fluid; outline: {legend}.</p>")
        else:
            top_html = "<p class=note>No fluid predicted in any B-scan.</p>"

        # shift
        kind, words = shift_sentence(row.get("shift_score"), row.get("shift_threshold"))
        gauge = ""
        if kind != "unknown":
            top = max(row["shift_score"], row["shift_threshold"]) * 1.25 or 1.0
            gauge = (f"<div class=gauge title=\"score {row['shift_score']:.2f}, threshold "
                     f"{row['shift_threshold']:.2f}\"><div class=\"bar {kind}\" "
                     f"style=\"width:{100 * row['shift_score'] / top:.1f}%\"></div><div class=thr "
                     f"style=\"left:{100 * row['shift_threshold'] / top:.1f}%\"></div></div>")
        shift_html = f"<div class=\"shift {kind}\">{gauge}<p>{_e(words)}</p></div>"

        sp = ("spacing unknown" if spacing_mm is None else
              f"spacing {spacing_mm[0]:.4g} x {spacing_mm[1]:.4g} x {spacing_mm[2]:.4g} mm (B-scan x row x A-scan)")
        shape = next(iter(shapes)) if len(shapes) == 1 else None
        geometry = f"{n} B-scans" + (f" of {shape[0]} x {shape[1]} px" if shape else "") + f"; {sp}"
        domain = f" &middot; domain {_e(row['domain'])}" if row.get("domain") else ""
        section = (
            f"<section class=vol id={anchor}><h2>{_e(case)}</h2>"
            f"<p class=meta>{_e(geometry)}{domain}"
            + (f" &middot; mask: <code>{_e(row['output'])}</code>" if row.get("output") else "") + "</p>"
            f"{shift_html}<div class=cols><div>{fluid_html}</div>{map_html}</div>{top_html}"
            f"<p class=back><a href=\"#volumes\">back to the table</a></p></section>")
        table_row = {"case": case, "anchor": anchor, "domain": row.get("domain") or "", "slices": n,
                     "shift_score": row.get("shift_score"), "shift_threshold": row.get("shift_threshold"),
                     "shift_flag": row.get("shift_flag") if row.get("shift_flag") is not None else
                     (None if kind == "unknown" else kind == "flag"), "total_fluid_nl": row.get("total_fluid_nl"),
                     "total_fluid_bscans": int((fluid_px > 0).sum())}
        for c in self.classes:
            table_row[f"{c}_nl"] = row.get(f"{c}_nl")
            table_row[f"{c}_bscans"] = len(per_class[c])
        self.entries.append(_Entry(anchor, table_row, section))
        return table_row

    # ------------------------------------------------------------------ the page
    def _model_html(self) -> str:
        m = self.model
        dice = m.get("dice") or {}
        if dice:
            rows = "".join(f"<tr><td>{_e(d)}</td><td class=num>{_fmt(v.get('dice'), 3)}</td>"
                           f"<td class=num>{_fmt(v.get('pooled'), 3)}</td><td class=num>{_fmt(v.get('n'))}</td></tr>"
                           for d, v in dice.items())
            dice_html = (f"<table class=dice><thead><tr><th>domain</th><th>Dice per B-scan</th><th>pooled Dice</th>"
                         f"<th>B-scans</th></tr></thead><tbody>{rows}</tbody></table>"
                         f"<p class=note>Measured on: {_e(m.get('dice_source', ''))}.</p>")
        else:
            dice_html = "<p><b>Measured Dice: none recorded with this model.</b></p>"
        status = f" <span class=status>{_e(m['status'])}</span>" if m.get("status") else ""
        return (f"<section class=model><h2>Model: {_e(m.get('name', ''))}{status}</h2>"
                f"<p class=notice>{_e(m.get('notice', ''))}</p>"
                f"<p><b>Trained on:</b> {_e(m.get('training_data', ''))}</p>"
                f"<p><b>Training:</b> {_e(m.get('mode') or 'n/a')}, {_e(_fmt(m.get('steps')))} steps, "
                f"seed {_e(_fmt(m.get('seed')))}. Bundle: <code>{_e(m.get('path', ''))}</code></p>"
                f"{dice_html}</section>")

    def _table_html(self) -> str:
        cols = [("volume", "text"), ("domain", "text"), ("B-scans", "num")]
        for c in self.classes:
            cols += [(f"{c} (nl)", "num"), (f"{c} B-scans", "num")]
        if len(self.classes) > 1:
            cols += [("all fluid (nl)", "num"), ("fluid B-scans", "num")]
        cols += [("shift score", "num"), ("flag", "text")]
        head = "".join(f"<th data-type={t} tabindex=0 title=\"click to sort\">{_e(name)}</th>" for name, t in cols)
        body = []
        for e in self.entries:
            r = e.row
            cells = [(f"<a href=\"#{e.anchor}\">{_e(r['case'])}</a>", r["case"]), (_e(r["domain"]), r["domain"]),
                     (str(r["slices"]), r["slices"])]
            for c in self.classes:
                cells += [(_fmt(r[f"{c}_nl"], 3), r[f"{c}_nl"]), (str(r[f"{c}_bscans"]), r[f"{c}_bscans"])]
            if len(self.classes) > 1:
                cells += [(_fmt(r["total_fluid_nl"], 3), r["total_fluid_nl"]),
                          (str(r["total_fluid_bscans"]), r["total_fluid_bscans"])]
            flag = {True: "unfamiliar", False: "ok", None: "n/a"}[r["shift_flag"]]
            cells += [(_fmt(r["shift_score"], 2), r["shift_score"]), (flag, flag)]
            tds = "".join(
                f"<td data-v=\"{_e('' if v is None else v)}\""
                + (" class=\"num\"" if isinstance(v, (int, float)) and not isinstance(v, bool) else "")
                + (" class=\"flagcell\"" if v == "unfamiliar" else "") + f">{text}</td>"
                for text, v in cells)
            body.append(f"<tr>{tds}</tr>")
        return (f"<table id=volumes class=sortable><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def html(self) -> str:
        n = len(self.entries)
        flagged = sum(1 for e in self.entries if e.row["shift_flag"])
        with_fluid = sum(1 for e in self.entries if e.row["total_fluid_bscans"])
        facts = "".join(f"<li><b>{_e(k)}:</b> <code>{_e(v)}</code></li>" for k, v in self.run.items())
        when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        summary = (f"{n} volume(s); {with_fluid} with predicted fluid; {flagged} flagged as unlike the training "
                   f"images.")
        return _PAGE.format(
            title=_e(self.title), css=_CSS.replace("@CBAR@", _colourbar_css()), version=_e(__version__),
            when=_e(when), facts=facts, summary=_e(summary), model=self._model_html(), table=self._table_html(),
            sections="\n".join(e.section for e in self.entries), script=_SCRIPT,
            notice=_e(self.model.get("notice", "")))

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.html())
        return path


# ----------------------------------------------------------------------------- from a predict run
def report_path(output: str | Path, given: str | Path | None = None) -> Path:
    """Where ``--report`` writes: ``given``, else ``OUTPUT/report.html`` for an output folder, else
    ``<output stem>_report.html`` next to a single output file (as for the fluid CSV)."""
    from segclr.io.volumes import strip_suffix, volume_suffix

    if given:
        return Path(given)
    output = Path(output)
    if output.suffix.lower() == ".png" and not output.is_dir():  # one B-scan mask file
        return output.parent / f"{output.stem}_{REPORT_NAME}"
    if volume_suffix(output) and not output.is_dir():
        return output.parent / f"{strip_suffix(output)}_{REPORT_NAME}"
    return output / REPORT_NAME


def _model_summary(checkpoint: str | Path) -> tuple[dict, dict]:
    from segclr.inference.packaged import card_summary
    from segclr.io.bundle import load_bundle

    _, meta = load_bundle(checkpoint)
    return card_summary(checkpoint, meta), meta


def report_volumes(path: str | Path, rows: list[dict], classes: list[str], checkpoint: str | Path,
                   run: dict | None = None, progress: bool = False) -> Path:
    """The report of a ``predict_volumes`` run: ``rows`` are its CSV rows (``input``, ``output``, fluid, shift)."""
    from tqdm import tqdm

    from segclr.io.intensity import normalize_intensity
    from segclr.io.volumes import read_volume

    summary, _ = _model_summary(checkpoint)
    report = HtmlReport(classes, summary, run)
    for row in tqdm(rows, desc="report", unit="volume", disable=not progress):
        volume = read_volume(row["input"])
        out = Path(row["output"])
        mask = read_volume(out, kind="mask") if out.is_dir() else read_volume(out, kind="label")
        images = normalize_intensity(volume.array, row["input"])
        report.add_volume(row["case"], images, np.asarray(mask.array).astype(np.uint8), volume.spacing_mm, row,
                          names=volume.meta.get("files"))
        del volume, mask, images
    return report.write(path)


def report_bscans(path: str | Path, case: str, image_files: list[Path], mask_files: list[Path],
                  checkpoint: str | Path, spacing_mm: tuple[float, float, float] | None = None,
                  row: dict | None = None, run: dict | None = None) -> Path:
    """The report of a B-scan folder (or one B-scan file), shown as one volume."""
    from segclr.inference.predict import Predictor
    from segclr.inference.volumes import shift_columns
    from segclr.io.images import read_image, read_mask

    summary, meta = _model_summary(checkpoint)
    classes = list(meta["classes"])[1:]
    images = [read_image(f) for f in image_files]
    masks = [read_mask(f, len(classes) + 1).astype(np.uint8) for f in mask_files]
    row = dict(row or {})
    if "shift_score" not in row and len({im.shape for im in images}) == 1:
        row.update(shift_columns(Predictor(checkpoint), np.stack(images)))
    report = HtmlReport(classes, summary, run)
    report.add_volume(case, images, masks, spacing_mm, row, names=[f.name for f in image_files])
    return report.write(path)


_CSS = """
:root { --fg:#1b1f24; --muted:#59636e; --line:#d0d7de; --bg:#ffffff; --panel:#f6f8fa; --flag:#b42318; --ok:#1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1280px; }
h1 { font-size: 22px; margin: 4px 0 2px; } h2 { font-size: 17px; margin: 0 0 6px; }
code { font-size: 12px; word-break: break-all; }
.notice { background: #fff4e5; border: 1px solid #f5b66b; padding: 6px 10px; border-radius: 6px; font-weight: 600; }
.model, .vol, .run { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin: 14px 0;
       background: var(--bg); }
.model { background: var(--panel); }
.status { font-size: 12px; font-weight: 600; background: #ddf4ff; border: 1px solid #54aeff; border-radius: 10px;
       padding: 1px 8px; vertical-align: middle; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: var(--panel); position: sticky; top: 0; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 10px; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; font-size: 10px; }
.tablewrap { max-height: 70vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
td.flagcell { color: var(--flag); font-weight: 600; }
tr.total td { font-weight: 600; }
.meta, .note { color: var(--muted); font-size: 12px; margin: 2px 0 6px; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); }
.map img { display: block; image-rendering: pixelated; border: 1px solid var(--line); margin-top: 2px; }
.map .note { max-width: 260px; }
.cbar { height: 10px; margin-top: 6px; border: 1px solid var(--line); background: @CBAR@; }
.cticks { display: flex; justify-content: space-between; font-size: 11px; color: var(--muted); }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px; }
.bscan img { display: block; border: 1px solid var(--line); background: #000; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 8px; border: 1px solid #555; }
.shift { border-left: 4px solid var(--line); padding: 2px 10px; margin: 6px 0 8px; }
.shift p { margin: 4px 0; }
.shift.flag { border-color: var(--flag); background: #fef3f2; } .shift.flag p { color: var(--flag); font-weight: 600; }
.shift.ok { border-color: var(--ok); }
.gauge { position: relative; height: 8px; width: 240px; background: #eaeef2; border-radius: 4px; margin-top: 6px; }
.gauge .bar { height: 8px; border-radius: 4px; } .gauge .bar.flag { background: var(--flag); }
.gauge .bar.ok { background: var(--ok); }
.gauge .thr { position: absolute; top: -3px; width: 2px; height: 14px; background: var(--fg); }
.back { font-size: 12px; margin: 6px 0 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
@media print { .tablewrap { max-height: none; } .vol { break-inside: avoid; } }
"""

_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("volumes");
  if (!table) { return; }
  var heads = table.tHead.rows[0].cells;
  function key(cell, numeric) {
    var v = cell.getAttribute("data-v");
    if (numeric) { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return (v || "").toLowerCase();
  }
  function sortBy(col) {
    var th = heads[col], numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === y) { return 0; }
      if (x === null || x === "") { return 1; }   /* blanks last, whatever the direction */
      if (y === null || y === "") { return -1; }
      return (x < y ? -1 : 1) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () { sortBy(col); });
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(col); } });
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="segclr {version}">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="meta">segclr {version} &middot; written {when} &middot; research use only, not for diagnosis</p>
</header>
<section class="run">
<h2>Run</h2>
<p>{summary}</p>
<ul>{facts}</ul>
</section>
{model}
<section class="run">
<h2>All volumes</h2>
<p class="note">Click a column header to sort (again to reverse). Volume names link to their section below.
B-scans are numbered from 1. Fluid volumes are in nanoliters (nl = 0.001 mm&sup3;).</p>
<div class="tablewrap">{table}</div>
</section>
{sections}
<footer><p>{notice}</p><p>Written by <code>segclr predict --report</code>; self-contained, opens offline.</p></footer>
<script>{script}</script>
</body>
</html>
"""

