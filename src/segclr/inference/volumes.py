"""Whole-volume prediction: slice-wise batched inference, masks in the input's geometry, fluid volumes.

``predict_volumes(checkpoint, input, output)`` takes a volume file, a folder of volumes, a
RETOUCH folder or an nnU-Net raw dataset (see :mod:`segclr.io.cases`), segments every B-scan
(array axis 0) in batches with the same preprocessing as training, and writes one label volume
per case in the input's format with the input's spacing, origin and direction (vendor files,
which cannot be written, give NIfTI). Every file is written atomically; inputs are never
touched, and existing outputs are refused unless ``overwrite``.

A CSV (default ``OUTPUT/fluid_volumes.csv``) gets one row per volume: its geometry, and per
class the fluid volume in nanoliters (voxels x voxel volume in mm^3 x 1000, since
1 mm^3 = 1 uL = 1000 nL) and the number of B-scans that contain that class; its last column,
``postprocess``, says in words which post-processing the masks got. Volumes whose
spacing is unknown (PNG folders without ``volume.json``, Zeiss ``.img``) get blank nanoliters.

Intensities: 8-bit data is divided by 255 and 16-bit by 65535 (as for PNG B-scans); other
types are used as they are when already within [0, 1], else min-max scaled per volume (with a
note; B-scan files are scaled per B-scan by the same rule).

Before anything is written, every output path of the run is computed; two inputs whose outputs
would land on one file (or the CSV on a mask) are refused, naming both.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segclr.data.preprocess import check_spacing
from segclr.inference.predict import Predictor, sidecar_spacing_um
from segclr.inference.shift import format_comparison
from segclr.io.atomic import atomic_write_text
from segclr.io.cases import CaseSet, find_cases
from segclr.io.images import InputError
from segclr.io.intensity import normalize_intensity
from segclr.io.volumes import (VENDOR_SUFFIXES, Volume, companion_files, probe_volume, read_volume, strip_suffix,
                               volume_suffix, write_volume)

NL_PER_MM3 = 1000.0
CSV_NAME = "fluid_volumes.csv"


def bscan_spacing_um(volume: Volume, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """(row, column) um of a volume's B-scans: ``override`` (``--spacing``), else the header's (y, x), else None.

    A spacing that makes no sense (zero, negative, NaN, over 1 mm) is refused naming the file.
    """
    where = str(volume.path or "volume")
    if override is not None:
        return check_spacing(override, f"{where} (--spacing)")
    if volume.spacing_mm is None:
        return None
    return check_spacing((volume.spacing_mm[1] * 1000.0, volume.spacing_mm[2] * 1000.0), where)


def segment_volume(predictor: Predictor, volume: Volume | np.ndarray, batch_size: int = 8,
                   spacing_um: tuple[float, float] | None = None) -> np.ndarray:
    """Label every B-scan of a (slices, H, W) volume, ``batch_size`` B-scans at a time -> uint8 mask.

    The B-scans are resampled to the model's target spacing from ``spacing_um`` or, when that is
    None, the volume's header; a volume of unknown spacing gets one warning line and the height rule.
    The masks are post-processed as the predictor says (see :class:`Predictor`).
    """
    return segment_volume_scored(predictor, volume, batch_size, spacing_um, scores=False)[0]


def segment_volume_scored(predictor: Predictor, volume: Volume | np.ndarray, batch_size: int = 8,
                          spacing_um: tuple[float, float] | None = None, scores: bool = True
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`segment_volume` plus each B-scan's domain-shift score from the same encoder pass.

    The scores are None when ``scores`` is False or the bundle has no shift statistics.
    """
    vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
    where = vol.path or "volume"
    if min(vol.shape[1:]) < 8:
        raise InputError(f"{where}: B-scans of {vol.shape[1]} x {vol.shape[2]} pixels; at least 8 x 8 needed")
    spacing = bscan_spacing_um(vol, spacing_um)
    note = predictor.spacing_note(str(where), spacing)
    if note:
        tqdm.write(note)
    images = normalize_intensity(vol.array, where)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    scores = scores and predictor.shift_stats is not None
    out = np.empty(vol.shape, dtype=np.uint8)
    score = np.empty(vol.shape[0], dtype=np.float64) if scores else None
    for start in range(0, vol.shape[0], batch_size):
        part = slice(start, start + batch_size)
        if scores:
            out[part], score[part] = predictor.predict_with_scores(images[part], spacing)
        else:
            out[part] = predictor.predict_batch(images[part], spacing)
    return out, score


def fluid_statistics(mask: np.ndarray, spacing_mm: tuple[float, float, float] | None,
                     classes: dict[int, str], voxel_mm3: float | None = None) -> dict[str, object]:
    """Per class: voxels, nanoliters (``None`` without spacing) and affected B-scans; plus totals.

    ``mask`` is (slices, H, W) or a sequence of 2D masks; ``classes`` maps foreground labels to
    names. Nanoliters = voxels x voxel volume x 1000, the voxel volume being ``voxel_mm3`` when
    given (:attr:`Volume.voxel_mm3`, which allows for a sheared grid), else prod(spacing_mm).
    Keys: ``voxel_nl``, ``<name>_voxels``,
    ``<name>_nl``, ``<name>_bscans``, ``total_fluid_voxels``, ``total_fluid_nl``, ``total_fluid_bscans``
    (B-scans with any foreground class).
    """
    n = max(classes, default=0) + 1
    counts = np.stack([np.bincount(np.asarray(sl).ravel().astype(np.int64), minlength=n)[:n] for sl in mask]) \
        if len(mask) else np.zeros((0, n), dtype=np.int64)
    if voxel_mm3 is None and spacing_mm is not None:
        voxel_mm3 = float(np.prod(spacing_mm))
    voxel_nl = None if spacing_mm is None or voxel_mm3 is None else float(voxel_mm3) * NL_PER_MM3
    stats: dict[str, object] = {"voxel_nl": voxel_nl}
    labels = sorted(classes)
    for label in labels:
        voxels = int(counts[:, label].sum())
        stats[f"{classes[label]}_voxels"] = voxels
        stats[f"{classes[label]}_nl"] = None if voxel_nl is None else voxels * voxel_nl
        stats[f"{classes[label]}_bscans"] = int((counts[:, label] > 0).sum())
    fg = counts[:, labels].sum(1) if labels else np.zeros(len(mask), dtype=np.int64)
    stats["total_fluid_voxels"] = int(fg.sum())
    stats["total_fluid_nl"] = None if voxel_nl is None else int(fg.sum()) * voxel_nl
    stats["total_fluid_bscans"] = int((fg > 0).sum())
    return stats


@dataclass
class VolumePrediction:
    outputs: list[Path]
    csv: Path | None
    rows: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # foreground class names, in label order
    predictor: Predictor | None = field(default=None, repr=False, compare=False)  # the model that made the masks


def _output_ending(input_path: Path, preferred: str | None) -> str:
    suffix = volume_suffix(input_path)
    if input_path.is_dir():
        return ".png"
    if suffix in VENDOR_SUFFIXES:
        return ".nii.gz"
    return preferred or suffix


def plan_outputs(cases: CaseSet, output: Path) -> list[Path]:
    """Where each case's mask goes: ``output`` itself for one case and a volume suffix, else a folder."""
    single_file = bool(volume_suffix(output)) and not output.is_dir()
    if single_file:
        if len(cases.cases) != 1:
            raise InputError(f"{output}: {len(cases.cases)} volumes to write; --output must be a folder")
        if volume_suffix(output) in VENDOR_SUFFIXES:
            raise InputError(f"{output}: vendor formats cannot be written; use .nii.gz or .mhd")
        return [output]
    targets = []
    for case in cases.cases:
        if case.image is None:
            raise InputError(f"{cases.path / case.case_id}: no image volume (oct.mhd) for case {case.case_id}")
        ending = _output_ending(case.image, cases.file_ending if cases.layout in ("nnunet", "retouch") else None)
        targets.append(output / case.case_id if ending == ".png" else output / f"{case.case_id}{ending}")
    return targets


def plan_files(cases: CaseSet, targets: list[Path], csv_path: Path) -> dict[Path, str]:
    """Every file the run will write -> the input it comes from; refuses two inputs on one output."""
    from segclr.io.bscans import list_bscans, planned_bscan_outputs

    planned: dict[Path, tuple[Path, str]] = {}  # resolved path -> (path as given, source)
    folders: dict[Path, str] = {}

    def add(f: Path, source: str) -> None:
        key = f.resolve()
        other = planned[key][1] if key in planned else next(
            (folders[p] for p in (key, *key.parents) if p in folders), None)
        if other is not None and other != source:
            raise InputError(f"{f}: two outputs would be written to this path, for {other} and for {source}; "
                             f"the last would silently replace the first (choose another --output/--csv)")
        planned.setdefault(key, (f, source))

    for case, target in zip(cases.cases, targets):
        source = str(case.image)
        if not target.suffix and case.image is not None and case.image.is_dir():  # B-scan folder -> mask folder
            for f in planned_bscan_outputs(target, [b.name for b in list_bscans(case.image)], True):
                add(f, source)
            add(target, source)
            folders.setdefault(target.resolve(), source)
        else:
            for f in companion_files(target):
                add(f, source)
    add(csv_path, "the fluid-volume CSV")
    return dict(planned.values())


def check_existing(planned: list[Path], overwrite: bool) -> None:
    """Refuse existing outputs unless ``overwrite``; names an orphan ``.raw`` (an interrupted write) as such."""
    existing = [f for f in planned if f.exists()]
    if existing and not overwrite:
        orphan = next((f for f in existing if f.suffix.lower() == ".raw" and f.with_suffix(".mhd") in set(planned)
                       and not f.with_suffix(".mhd").exists()), None)
        if orphan is not None:
            raise InputError(f"{orphan}: data file without its .mhd header (left by an interrupted run?); "
                             f"pass --overwrite to replace it")
        raise InputError(f"{existing[0]}: output exists ({len(existing)} files would be overwritten); pass --overwrite")


def _input_files(path: Path) -> list[Path]:
    files = [path]
    if volume_suffix(path) == ".mhd":
        files.append(path.with_suffix(".raw"))
        try:  # the data file the header names, when it is not the usual stem.raw
            for line in path.read_text(errors="replace").splitlines():
                if line.strip().lower().startswith("elementdatafile"):
                    files.append(path.parent / line.split("=", 1)[1].strip())
        except OSError:
            pass
    return [f.resolve() for f in files]


def write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def shift_columns(predictor: Predictor, images: np.ndarray | None = None,
                  spacing_um: tuple[float, float] | None = None, scores: np.ndarray | None = None) -> dict:
    """Domain-shift score of a volume (mean over its B-scans) and whether it is flagged.

    ``scores``: the B-scans' scores when already computed (:func:`segment_volume_scored`); else
    they are computed from ``images`` (one more encoder pass).
    """
    if scores is None and images is not None:
        scores = predictor.shift_scores(images, spacing_um)
    if scores is None or predictor.shift_threshold is None:
        return {"shift_score": None, "shift_threshold": None, "shift_flag": None}
    score = float(np.mean(scores))
    return {"shift_score": score, "shift_threshold": predictor.shift_threshold,
            "shift_flag": bool(score > predictor.shift_threshold)}


def predict_volumes(checkpoint: str | Path, input_path: str | Path, output: str | Path, overwrite: bool = False,
                    batch_size: int = 8, csv_path: str | Path | None = None, progress: bool = True,
                    domain_map: str | Path | None = None, predictor: Predictor | None = None,
                    spacing_um: tuple[float, float] | None = None, postprocess: bool = True) -> VolumePrediction:
    """Segment every volume of ``input_path`` into ``output``; write the fluid-volume CSV; see the module doc.

    Each volume goes through the encoder once: its masks and its domain-shift score come from the
    same pass. ``postprocess=False`` writes the raw masks (a given ``predictor`` keeps its own setting).
    """
    input_path, output = Path(input_path), Path(output)
    cases = find_cases(input_path, domain_map)
    if input_path.is_dir() and (output.resolve() == input_path.resolve()
                                or input_path.resolve() in output.resolve().parents):
        raise InputError(f"{input_path}: output {output} is inside the input folder; choose another --output")
    targets = plan_outputs(cases, output)
    if csv_path is None:
        single_file = bool(volume_suffix(output)) and not output.is_dir()
        csv_path = output.parent / f"{strip_suffix(output)}_{CSV_NAME}" if single_file else output / CSV_NAME
    csv_path = Path(csv_path)

    inputs = {f for case in cases.cases if case.image is not None for f in _input_files(case.image)}
    planned = plan_files(cases, targets, csv_path)
    for f in planned:
        if f.resolve() in inputs or any(f.resolve() == p or p in f.resolve().parents for p in inputs if p.is_dir()):
            raise InputError(f"{f}: would overwrite an input; choose another --output")
    check_existing(list(planned), overwrite)

    predictor = predictor or Predictor(checkpoint, postprocess=postprocess)
    for case in cases.cases:  # every input checked (headers against data sizes) before anything is written
        probe_volume(case.image)
    classes = {i: n for i, n in enumerate(predictor.classes) if i > 0}
    rows: list[dict] = []
    for case, target in tqdm(list(zip(cases.cases, targets)), desc="predict", unit="volume", disable=not progress):
        volume = read_volume(case.image)
        spacing = bscan_spacing_um(volume, spacing_um)
        mask, scores = segment_volume_scored(predictor, volume, batch_size, spacing)
        if volume.format == "bscans" and not volume_suffix(target):
            from segclr.io.bscans import write_bscan_folder

            write_bscan_folder(target, volume.with_array(mask), kind="mask")
        else:
            fmt = "nifti" if volume.format == "vendor" else volume.format
            write_volume(target, volume.with_array(mask, format=fmt, path=target))
        z, h, w = volume.shape
        sp = volume.spacing_mm or (None, None, None)
        row = {"case": case.case_id, "domain": case.domain or "", "input": str(case.image), "output": str(target),
               "format": volume.format, "slices": z, "height": h, "width": w,
               "spacing_z_mm": sp[0], "spacing_y_mm": sp[1], "spacing_x_mm": sp[2]}
        row.update(fluid_statistics(mask, volume.spacing_mm, classes, volume.voxel_mm3))
        row.update(shift_columns(predictor, scores=scores))
        row["postprocess"] = predictor.postprocess_description  # last column: existing readers keep working
        if row.get("shift_flag"):
            tqdm.write(f"warning: {case.case_id} looks unlike the training data (shift score "
                       f"{format_comparison(row['shift_score'], row['shift_threshold'])}); check its segmentation")
        rows.append(row)
        write_csv(csv_path, rows)  # rewritten after each volume, so an interrupted run keeps its rows
    return VolumePrediction(targets, csv_path, rows, list(classes.values()), predictor)


def predict_bscan_folder(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path,
                         csv_path: str | Path, overwrite: bool = False, progress: bool = True,
                         spacing_um: tuple[float, float] | None = None, postprocess: bool = True) -> VolumePrediction:
    """:func:`predict_folder` (one mask PNG per B-scan) plus a one-row fluid CSV for the folder as a volume.

    The spacing comes from the input folder's ``volume.json`` (see :mod:`segclr.io.bscans`); without
    it the nanoliter columns stay blank.
    """
    from segclr.inference.predict import predict_folder
    from segclr.io.bscans import read_sidecar
    from segclr.io.images import read_mask

    from segclr.io.bscans import list_bscans, mask_name

    input_dir, csv_path = Path(input_dir), Path(csv_path)
    files = list_bscans(input_dir)
    for f in files:
        if (Path(output_dir) / mask_name(f)).resolve() == csv_path.resolve():
            raise InputError(f"{csv_path}: two outputs would be written to this path, for {f} and for the "
                             f"fluid-volume CSV (choose another --csv)")
        if f.resolve() == csv_path.resolve():
            raise InputError(f"{csv_path}: would overwrite an input; choose another --csv")
    if csv_path.exists() and not overwrite:
        raise InputError(f"{csv_path}: output exists; pass --overwrite")
    predictor = Predictor(checkpoint, postprocess=postprocess)
    side = read_sidecar(input_dir) if input_dir.is_dir() else {}
    spacing = Volume(np.zeros((1, 1, 1)), side.get("spacing_mm")).spacing_mm if side.get("spacing_mm") else None
    written = predict_folder(checkpoint, input_dir, output_dir, overwrite=overwrite, progress=progress,
                             spacing_um=spacing_um, predictor=predictor)
    masks = [read_mask(f, predictor.num_classes) for f in written]
    classes = {i: n for i, n in enumerate(predictor.classes) if i > 0}
    shapes = {m.shape for m in masks}
    h, w = next(iter(shapes)) if len(shapes) == 1 else ("", "")
    sp = spacing or (None, None, None)
    row = {"case": input_dir.name, "domain": "", "input": str(input_dir), "output": str(output_dir),
           "format": "bscans", "slices": len(masks), "height": h, "width": w,
           "spacing_z_mm": sp[0], "spacing_y_mm": sp[1], "spacing_x_mm": sp[2]}
    row.update(fluid_statistics(masks, spacing, classes))
    row["postprocess"] = predictor.postprocess_description
    write_csv(csv_path, [row])
    return VolumePrediction(written, csv_path, [row], list(classes.values()), predictor)


def predict_bscan_file(checkpoint: str | Path, input_file: str | Path, output: str | Path,
                       overwrite: bool = False, csv_path: str | Path | None = None,
                       spacing_um: tuple[float, float] | None = None, postprocess: bool = True) -> VolumePrediction:
    """Segment one PNG/TIFF/JPEG B-scan: the mask goes to ``output`` when it ends in ``.png``, else to
    ``output/NAME.png``. With ``csv_path``, also a one-row fluid CSV (spacing from the input folder's
    ``volume.json``)."""
    from segclr.io.bscans import mask_name, read_sidecar
    from segclr.io.images import read_image, write_mask

    input_file, output = Path(input_file), Path(output)
    target = output if output.suffix.lower() == ".png" and not output.is_dir() else output / mask_name(input_file)
    outputs = [target] + ([Path(csv_path)] if csv_path is not None else [])
    for f in outputs:
        if f.resolve() == input_file.resolve():
            raise InputError(f"{f}: would overwrite the input; choose another --output/--csv")
    if csv_path is not None and Path(csv_path).resolve() == target.resolve():
        raise InputError(f"{target}: two outputs would be written to this path, for {input_file} and for the "
                         f"fluid-volume CSV (choose another --csv)")
    check_existing(outputs, overwrite)
    image = read_image(input_file)
    predictor = Predictor(checkpoint, postprocess=postprocess)
    spacing_um = sidecar_spacing_um(input_file.parent, spacing_um)
    note = predictor.spacing_note(str(input_file), spacing_um)
    if note:
        print(note, flush=True)
    mask = predictor(image, spacing_um)
    write_mask(target, mask)
    classes = {i: n for i, n in enumerate(predictor.classes) if i > 0}
    rows: list[dict] = []
    if csv_path is not None:
        side = read_sidecar(input_file.parent)
        spacing = Volume(np.zeros((1, 1, 1)), side.get("spacing_mm")).spacing_mm if side.get("spacing_mm") else None
        sp = spacing or (None, None, None)
        row = {"case": input_file.stem, "domain": "", "input": str(input_file), "output": str(target),
               "format": "bscans", "slices": 1, "height": mask.shape[0], "width": mask.shape[1],
               "spacing_z_mm": sp[0], "spacing_y_mm": sp[1], "spacing_x_mm": sp[2]}
        row.update(fluid_statistics([mask], spacing, classes))
        row["postprocess"] = predictor.postprocess_description
        write_csv(Path(csv_path), [row])
        rows.append(row)
    return VolumePrediction([target], None if csv_path is None else Path(csv_path), rows, list(classes.values()),
                            predictor)


def format_fluid_table(rows: list[dict], classes: list[str]) -> str:
    """A console table: case, then nanoliters and affected B-scans per class."""
    head = f"{'case':<24}" + "".join(f"{c + ' nl':>14}{c + ' B-scans':>14}" for c in classes)
    lines = [head]
    for r in rows:
        cells = []
        for c in classes:
            nl = r.get(f"{c}_nl")
            cells.append(f"{'n/a' if nl is None else f'{nl:.3f}':>14}{r.get(f'{c}_bscans', 0):>14}")
        lines.append(f"{r['case']:<24}" + "".join(cells))
    return "\n".join(lines)
