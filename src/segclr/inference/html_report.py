"""``segclr predict --report``: one self-contained HTML page to check and sign off a prediction run.

The page (``report.html`` next to the predictions) needs nothing but a browser: styles, the
table-sorting script and every image are inside the file (images as ``data:`` URIs), and it
loads nothing from the network. It has

* **the run**: the model card's summary (what the model was trained on, its measured Dice per
  domain, the research-use notice), where the inputs and outputs are, which post-processing the
  masks got (or that they are the raw network output), and a table of all volumes
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
volumes just written (read back one at a time, so memory does not grow with the run). The model
the prediction run loaded is reused when passed (``predictor``) instead of being loaded again.

B-scans are numbered from 1 (the first B-scan of the volume, array index 0, is B-scan 1).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from segclr import __version__
from segclr.io.atomic import atomic_write_text
from segclr.inference.report_figures import MAP_SIZE  # noqa: F401 (re-exported with the other sizes)
from segclr.inference.report_figures import (CLASS_COLOURS, REPORT_NAME, THUMB_WIDTH, TOP_BSCANS, _colourbar_css,
                                             _data_uri, _e, _fmt, bscan_ranges, display_range, enface_png,
                                             enface_thickness, map_size, outline_thumbnail, shift_sentence)
from segclr.inference.report_page import _CSS, _PAGE, _SCRIPT


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
    (e.g. ``{"input": ..., "output": ...}``); ``postprocess``: the post-processing the masks got, in
    words (:func:`segclr.inference.postprocess.describe_postprocess`), shown with the run's summary.
    """

    def __init__(self, classes: list[str], model: dict, run: dict | None = None, title: str = "segclr report",
                 postprocess: str | None = None):
        self.classes = list(classes)
        self.model = model
        self.run = dict(run or {})
        self.postprocess = postprocess
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
        per_class = {c: [i for i, m in enumerate(masks) if (np.asarray(m) == label).any()]
                     for label, c in labels.items()}
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
        post = f"<p><b>Post-processing:</b> {_e(self.postprocess)}</p>\n" if self.postprocess else ""
        return _PAGE.format(
            title=_e(self.title), css=_CSS.replace("@CBAR@", _colourbar_css()), version=_e(__version__),
            when=_e(when), facts=facts, summary=_e(summary), postprocess=post, model=self._model_html(),
            table=self._table_html(),
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


def _model_summary(checkpoint: str | Path, predictor=None, postprocess: bool = True) -> tuple[dict, dict, str]:
    """The model card's summary, the bundle's metadata and the post-processing in words; from
    ``predictor`` (a loaded :class:`~segclr.inference.predict.Predictor`, whose own setting wins over
    ``postprocess``) when given, else read from ``checkpoint``."""
    from segclr.inference.packaged import card_summary
    from segclr.inference.postprocess import describe_postprocess

    if predictor is not None:
        meta, words = predictor.meta, predictor.postprocess_description
    else:
        from segclr.io.bundle import load_bundle

        _, meta = load_bundle(checkpoint)
        words = describe_postprocess(meta.get("postprocess"), postprocess)
    return card_summary(checkpoint, meta), meta, words


def report_volumes(path: str | Path, rows: list[dict], classes: list[str], checkpoint: str | Path,
                   run: dict | None = None, progress: bool = False, predictor=None, postprocess: bool = True) -> Path:
    """The report of a ``predict_volumes`` run: ``rows`` are its CSV rows (``input``, ``output``, fluid, shift).

    ``predictor``: the run's loaded model, if at hand; ``postprocess``: whether the masks got the
    bundle's post-processing (used only without ``predictor``)."""
    from tqdm import tqdm

    from segclr.io.intensity import normalize_intensity
    from segclr.io.volumes import read_volume

    summary, _, words = _model_summary(checkpoint, predictor, postprocess)
    report = HtmlReport(classes, summary, run, postprocess=words)
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
                  row: dict | None = None, run: dict | None = None, predictor=None, postprocess: bool = True) -> Path:
    """The report of a B-scan folder (or one B-scan file), shown as one volume; ``predictor`` and
    ``postprocess`` as for :func:`report_volumes` (the predictor also gives the domain-shift score)."""
    from segclr.inference.predict import Predictor
    from segclr.inference.volumes import shift_columns
    from segclr.io.images import read_image, read_mask

    summary, meta, words = _model_summary(checkpoint, predictor, postprocess)
    classes = list(meta["classes"])[1:]
    images = [read_image(f) for f in image_files]
    masks = [read_mask(f, len(classes) + 1).astype(np.uint8) for f in mask_files]
    row = dict(row or {})
    if "shift_score" not in row and len({im.shape for im in images}) == 1:
        row.update(shift_columns(predictor or Predictor(checkpoint), np.stack(images)))
    report = HtmlReport(classes, summary, run, postprocess=words)
    report.add_volume(case, images, masks, spacing_mm, row, names=[f.name for f in image_files])
    return report.write(path)
