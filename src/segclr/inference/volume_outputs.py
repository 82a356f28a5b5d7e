"""Outputs of whole-volume prediction: where each mask goes, collision and overwrite checks, the CSV.

:func:`plan_outputs` maps each case of a :class:`~segclr.io.cases.CaseSet` to its mask path
(``--output`` itself for one case and a volume suffix, else a file or B-scan folder per case in
the input's format, vendor inputs as NIfTI). :func:`plan_files` lists every file a run will
write, companions (``.raw``, per-B-scan PNGs) and the CSV included, and refuses two inputs whose
outputs would land on one path; :func:`check_existing` refuses existing outputs unless
``--overwrite``, naming an orphan ``.raw`` left by an interrupted write. :func:`write_csv` writes
the fluid-volume rows atomically (blank cells for None, floats to 10 significant digits) and
:func:`format_fluid_table` prints them for the console. Used by the drivers in
:mod:`segclr.inference.volumes`, which re-exports every public name here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from segclr.io.atomic import atomic_write_text
from segclr.io.cases import CaseSet
from segclr.io.images import InputError
from segclr.io.volumes import VENDOR_SUFFIXES, companion_files, volume_suffix

CSV_NAME = "fluid_volumes.csv"


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
