"""Score a model bundle on B-scans: folders of PNGs, or the benchmark's test volumes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from segclr.evaluation.metrics import DiceAccumulator
from segclr.inference.predict import Predictor, list_images, sidecar_spacing_um
from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError, read_image, read_mask


def score_pairs(predictor: Predictor, cases: Iterable[tuple], progress: bool = True, desc: str = "evaluate",
                total: int | None = None, spacing_um: tuple[float, float] | None = None) -> DiceAccumulator:
    """Predict each (name, image, reference[, spacing_um]) and accumulate Dice for every foreground class.

    The reference stays on the image's own grid; the prediction is resampled back to it. A case's
    spacing (row, column um) defaults to ``spacing_um``.
    """
    labels = {i: n for i, n in enumerate(predictor.classes) if i > 0}
    acc = DiceAccumulator(labels)
    for case in tqdm(cases, desc=desc, unit="B-scan", disable=not progress, total=total):
        name, image, ref = case[:3]
        spacing = case[3] if len(case) > 3 else spacing_um
        if image.shape != ref.shape:
            raise InputError(f"{name}: image shape {image.shape} differs from mask shape {ref.shape}")
        acc.add(name, predictor(image, spacing), ref)
    return acc


def evaluate_folder(checkpoint: str | Path, images_dir: str | Path, masks_dir: str | Path,
                    out: str | Path | None = None, progress: bool = True,
                    spacing_um: tuple[float, float] | None = None, postprocess: bool = True) -> dict:
    """Dice of ``checkpoint`` on every image in ``images_dir`` against the mask of the same name.

    The mask of ``b01.jpg`` is ``b01.jpg`` in ``masks_dir`` if there is one, else any B-scan file
    named ``b01`` there (``b01.png``), so JPEG or TIFF B-scans can have PNG masks. The predictions
    are post-processed as the bundle says unless ``postprocess`` is False; ``summary["postprocess"]``
    records what was applied (None: nothing).
    """
    predictor = Predictor(checkpoint, postprocess=postprocess)
    files = list_images(images_dir)
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise InputError(f"{masks_dir}: mask folder not found")
    by_name = {f.stem: f for f in list_images(masks_dir)} if any(masks_dir.iterdir()) else {}
    masks = {f.name: masks_dir / f.name if (masks_dir / f.name).is_file() else by_name.get(f.stem) for f in files}
    missing = [name for name, m in masks.items() if m is None]
    if missing:
        raise InputError(f"{masks_dir / missing[0]}: mask missing for image {missing[0]} ({len(missing)} missing)")
    cases = [(f.name, read_image(f), read_mask(masks[f.name], predictor.num_classes)) for f in files]
    for name, image, mask in cases:
        if image.shape != mask.shape:
            raise InputError(f"{masks[name]}: mask shape {mask.shape} differs from image shape {image.shape}")
    spacing = sidecar_spacing_um(Path(images_dir), spacing_um)
    note = predictor.spacing_note(str(images_dir), spacing)
    if note:
        print(note, flush=True)
    summary = score_pairs(predictor, cases, progress=progress, total=len(cases), spacing_um=spacing).summary()
    summary["checkpoint"] = str(checkpoint)
    summary["postprocess"] = predictor.applied_postprocess
    if out is not None:
        atomic_write_text(out, json.dumps(summary, indent=2, default=_json_nan))
    return summary


def _json_nan(value):  # pragma: no cover - json calls this only for unknown types
    raise TypeError(repr(value))


def format_summary(summary: dict) -> str:
    """One line per class: Dice per B-scan, pooled Dice, predicted over reference area (1 = unbiased), counts."""
    rows = [f"{'class':<12}{'Dice (per B-scan)':>20}{'pooled Dice':>14}{'area pred/ref':>15}{'B-scans':>9}{'NaN':>6}"]
    for label, v in summary["mean"].items():
        rows.append(f"{v['name']:<12}{_fmt(v['Dice']):>20}{_fmt(v['pooled_Dice']):>14}"
                    f"{_fmt(v.get('area_ratio')):>15}{v['n_cases']:>9}{v['n_nan']:>6}")
    return "\n".join(rows)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
