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

The per-volume computations (segmentation, fluid statistics, shift columns) are in
:mod:`segclr.inference.volume_segment` and the output planning, checks and CSV in
:mod:`segclr.inference.volume_outputs`; this module holds the drivers and re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segclr.inference.predict import Predictor, sidecar_spacing_um
from segclr.inference.shift import format_comparison
from segclr.inference.volume_outputs import (CSV_NAME, _input_files, check_existing, format_fluid_table, plan_files,
                                             plan_outputs, write_csv)
from segclr.inference.volume_segment import (NL_PER_MM3, bscan_spacing_um, fluid_statistics, segment_volume,
                                             segment_volume_scored, shift_columns)
from segclr.io.cases import find_cases
from segclr.io.images import InputError
from segclr.io.intensity import normalize_intensity
from segclr.io.volumes import Volume, probe_volume, read_volume, strip_suffix, volume_suffix, write_volume

__all__ = ["NL_PER_MM3", "CSV_NAME", "VolumePrediction", "bscan_spacing_um", "segment_volume", "segment_volume_scored",
           "fluid_statistics", "shift_columns", "normalize_intensity", "plan_outputs", "plan_files", "check_existing",
           "write_csv", "format_fluid_table", "predict_volumes", "predict_bscan_folder", "predict_bscan_file"]


@dataclass
class VolumePrediction:
    outputs: list[Path]
    csv: Path | None
    rows: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # foreground class names, in label order
    predictor: Predictor | None = field(default=None, repr=False, compare=False)  # the model that made the masks



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
