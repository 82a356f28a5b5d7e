"""Volume-level scores: Dice per class (volume and per B-scan, nnU-Net rule) and HD95 in mm.

For each case (a predicted label volume and its reference, same shape and geometry) and each
foreground class:

* ``Dice``, ``IoU``, ``TP``/``FP``/``FN``/``TN``, ``n_pred``/``n_ref`` over the whole volume, with the
  nnU-Net rule of :mod:`segclr.evaluation.metrics` (NaN only when both are empty);
* ``Dice_slice_mean``: the mean over the volume's B-scans of the per-B-scan Dice (same rule,
  NaN B-scans skipped);
* ``HD95_mm``: the standard 95th-percentile Hausdorff distance, as MONAI, medpy and DeepMind's
  surface-distance compute it: ``max(p95(pred surface -> reference surface), p95(reference
  surface -> pred surface))``, each the 95th percentile (linear interpolation) of the distances
  from one surface's voxels to the nearest voxel of the other, in mm from the anisotropic voxel
  spacing, via scipy's Euclidean distance transform. A surface voxel is a mask voxel with a
  6-connected neighbour outside the mask (or outside the image). NaN when either mask is empty
  (the distance is undefined) or when the spacing is unknown.

Prediction and reference must share shape, spacing, origin and direction (B-scan folders carry
no origin or direction and are not compared on them). Cases are paired by id (B-scan folders:
B-scans by file name); cases on one side only are reported and listed under ``unpaired``.

``summary.json`` follows nnU-Net's layout (``metric_per_case`` with ``prediction_file``,
``reference_file`` and ``metrics`` keyed by the label as a string; ``mean`` per label;
``foreground_mean``), plus ``pooled_Dice`` per label and a ``slice_level`` block
(per-B-scan mean and pooled Dice over every B-scan of every case).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from segclr.evaluation.metrics import DiceAccumulator, confusion, dice_from_counts, nanmean
from segclr.io.atomic import atomic_write_text
from segclr.io.cases import Case, CaseSet, find_cases
from segclr.io.bscans import match_bscans, read_bscan_folder
from segclr.io.images import InputError, note
from segclr.io.volumes import Volume, check_labels, probe_volume, read_volume

_STRUCTURE = ndimage.generate_binary_structure(3, 1)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_STRUCTURE, border_value=0)


def surface_distances(a: np.ndarray, b: np.ndarray, spacing_mm) -> np.ndarray:
    """Distances (mm) from every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    sa, sb = _surface(a), _surface(b)
    # the distance map to b's surface, computed on the bounding box of both masks (plus a margin):
    # every surface voxel of a and b lies inside it, so the nearest b-surface voxel does too.
    box = _bbox(a | b)
    dist = ndimage.distance_transform_edt(~sb[box], sampling=spacing_mm)
    return dist[sa[box]]


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    idx = [np.flatnonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != i))) for i in range(mask.ndim)]
    return tuple(slice(max(0, int(ix[0]) - 1), min(n, int(ix[-1]) + 2)) for ix, n in zip(idx, mask.shape))


def hd95(pred: np.ndarray, ref: np.ndarray, spacing_mm=(1.0, 1.0, 1.0)) -> float:
    """95th-percentile Hausdorff distance in mm, max of the two directed p95s (NaN if either mask is empty)."""
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
        spacing_mm = (1.0, *tuple(spacing_mm)[-2:])
    if not pred.any() or not ref.any():
        return float("nan")
    return float(max(np.percentile(surface_distances(pred, ref, spacing_mm), 95),
                     np.percentile(surface_distances(ref, pred, spacing_mm), 95)))


class VolumeEvaluator:
    """Accumulates per-case volume metrics; :meth:`summary` gives the nnU-Net-style dict."""

    def __init__(self, labels: dict[int, str]) -> None:
        self.labels = dict(sorted(labels.items()))
        self.volumes = DiceAccumulator(self.labels)
        self.slices = DiceAccumulator(self.labels)
        self.cases: list[dict] = []

    def add(self, case_id: str, pred: Volume, ref: Volume, pred_file: str = "", ref_file: str = "") -> dict:
        if pred.shape != ref.shape:
            raise InputError(f"{pred_file or case_id}: prediction shape {pred.shape} differs from reference "
                             f"shape {ref.shape} ({ref_file or case_id})")
        if ref.spacing_mm is not None and pred.spacing_mm is not None and not np.allclose(
                pred.spacing_mm, ref.spacing_mm, rtol=1e-3, atol=1e-6):
            raise InputError(f"{pred_file or case_id}: voxel spacing {pred.spacing_mm} differs from the reference's "
                             f"{ref.spacing_mm} ({ref_file or case_id})")
        check_same_placement(pred, ref, pred_file or case_id, ref_file or case_id)
        allowed = {0, *self.labels}
        p = check_labels(pred, allowed, pred_file or case_id)
        r = check_labels(ref, allowed, ref_file or case_id)
        spacing = ref.spacing_mm or pred.spacing_mm
        entry = self.volumes.add(case_id, p, r)
        slice_dice: dict[int, list[float]] = {lab: [] for lab in self.labels}
        for k in range(p.shape[0]):
            sc = self.slices.add(f"{case_id}#{k}", p[k], r[k])
            for lab in self.labels:
                slice_dice[lab].append(sc["metrics"][str(lab)]["Dice"])
        for lab in self.labels:
            m = entry["metrics"][str(lab)]
            tp, fp, fn = m["TP"], m["FP"], m["FN"]
            m["TN"] = int(p.size - tp - fp - fn)
            m["IoU"] = float("nan") if tp + fp + fn == 0 else tp / (tp + fp + fn)
            m["Dice_slice_mean"] = nanmean(slice_dice[lab])
            m["HD95_mm"] = float("nan") if spacing is None else hd95(p == lab, r == lab, spacing)
        case = {"reference_file": ref_file or case_id, "prediction_file": pred_file or case_id,
                "case": case_id, "metrics": entry["metrics"]}
        self.cases.append(case)
        return case

    def summary(self) -> dict:
        per_label = self.volumes.per_label()
        slice_label = self.slices.per_label()
        mean: dict[str, dict] = {}
        for lab, name in self.labels.items():
            key = str(lab)
            ms = [c["metrics"][key] for c in self.cases]
            mean[key] = {
                "name": name,
                "Dice": per_label[key]["Dice"],
                "pooled_Dice": per_label[key]["pooled_Dice"],
                "area_ratio": per_label[key]["area_ratio"],
                "IoU": nanmean([m["IoU"] for m in ms]),
                "Dice_slice_mean": slice_label[key]["Dice"],
                "HD95_mm": nanmean([m["HD95_mm"] for m in ms]),
                **{k: float(np.mean([m[k] for m in ms])) if ms else float("nan")
                   for k in ("TP", "FP", "FN", "TN", "n_pred", "n_ref")},
                "n_cases": len(ms),
                "n_nan": per_label[key]["n_nan"],
            }
        metric_names = ("Dice", "pooled_Dice", "IoU", "Dice_slice_mean", "HD95_mm")
        return {
            "metric_per_case": [
                {k: c[k] for k in ("reference_file", "prediction_file", "metrics")} for c in self.cases
            ],
            "mean": mean,
            "foreground_mean": {k: nanmean([v[k] for v in mean.values()]) for k in metric_names},
            "slice_level": {
                "mean": {k: {"name": v["name"], "Dice": v["Dice"], "pooled_Dice": v["pooled_Dice"],
                             "n_slices": v["n_cases"], "n_nan": v["n_nan"]} for k, v in slice_label.items()},
                "foreground_mean": {"Dice": nanmean([v["Dice"] for v in slice_label.values()]),
                                    "pooled_Dice": nanmean([v["pooled_Dice"] for v in slice_label.values()])},
            },
            "labels": {str(k): v for k, v in self.labels.items()},
        }


def check_same_placement(pred: Volume, ref: Volume, pred_name, ref_name) -> None:
    """Refuse a prediction whose origin or direction differs from its reference's (B-scan folders exempt)."""
    if "bscans" in (pred.format, ref.format):
        return
    spacing = ref.spacing_mm or pred.spacing_mm or (1.0, 1.0, 1.0)
    tol = max(1e-5, 0.01 * min(spacing))  # a hundredth of a voxel
    if not np.allclose(pred.origin, ref.origin, rtol=1e-6, atol=tol):
        raise InputError(f"{pred_name}: origin {_vec(pred.origin)} differs from the reference's {_vec(ref.origin)} "
                         f"({ref_name}); the prediction must lie on the reference's voxel grid")
    if not np.allclose(pred.direction, ref.direction, atol=1e-3):
        raise InputError(f"{pred_name}: direction {_vec(pred.direction.ravel())} differs from the reference's "
                         f"{_vec(ref.direction.ravel())} ({ref_name}); the prediction must lie on the reference's "
                         f"voxel grid")


def _vec(values) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def _reference_path(case: Case, refs: CaseSet) -> Path | None:
    if refs.layout in ("retouch", "nnunet"):
        return case.label
    return case.image


def pair_cases(pred: CaseSet, ref: CaseSet) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(case_id, prediction, reference) pairs, and the case ids with a prediction only / a reference only.

    Unlabeled cases of a dataset are not counted as reference-only. No pair at all is an error.
    """
    single = ("file", "bscans")
    if pred.layout in single and ref.layout in single:
        return [(ref.cases[0].case_id, pred.cases[0].image, ref.cases[0].image)], [], []
    preds = pred.by_id()
    pairs, ref_only = [], []
    labeled = set()
    for case in ref.cases:
        ref_path = _reference_path(case, ref)
        if ref_path is None:
            continue  # unlabeled case of a dataset
        labeled.add(case.case_id)
        if case.case_id not in preds:
            ref_only.append(case.case_id)
            continue
        pairs.append((case.case_id, preds[case.case_id].image, ref_path))
    pred_only = sorted(set(preds) - labeled)
    if not pairs:
        if ref_only:
            raise InputError(f"{pred.path}: no prediction for any reference case of {ref.path} "
                             f"(e.g. {ref_only[0]}); predictions: {', '.join(sorted(preds)[:3]) or 'none'}")
        raise InputError(f"{ref.path}: no labeled reference volumes")
    return pairs, pred_only, ref_only


def _report_unpaired(pred_only: list[str], ref_only: list[str], what: str = "case") -> None:
    for ids, side, other in ((pred_only, "prediction", "reference"), (ref_only, "reference", "prediction")):
        if ids:
            shown = ", ".join(ids[:5]) + (f", ... ({len(ids)} in all)" if len(ids) > 5 else "")
            note(f"{len(ids)} {side} {what}(s) without a {other}, not scored: {shown}", key=f"unpaired:{side}")


def default_labels(ref: CaseSet, volumes: Iterable[Volume] = ()) -> dict[int, str]:
    """Label names from the reference layout (dataset.json, RETOUCH), else the labels found in the data."""
    if ref.labels:
        return dict(ref.labels)
    found: set[int] = set()
    for v in volumes:
        found |= {int(x) for x in np.unique(v.array) if int(x) != 0}
    return {lab: f"class{lab}" for lab in sorted(found)} or {1: "class1"}


def evaluate_volume_folders(pred_path: str | Path, ref_path: str | Path, out: str | Path | None = None,
                            labels: dict[int, str] | None = None, progress: bool = True) -> dict:
    """Score predicted label volumes against references (file, folder, RETOUCH folder or nnU-Net dataset).

    Two folders of B-scans are paired B-scan by B-scan by file name (so a subset can be scored)
    and scored as one volume each. Cases or B-scans found on one side only are reported and
    listed in the summary's ``unpaired`` block.
    """
    pred_path, ref_path = Path(pred_path), Path(ref_path)
    preds, refs = find_cases(pred_path), find_cases(ref_path)
    if preds.layout == "bscans" and refs.layout == "bscans" and pred_path.is_dir() and ref_path.is_dir():
        matched, pred_only, ref_only = match_bscans(pred_path, ref_path)
        if not matched:
            raise InputError(f"{pred_path}: no B-scan has the name of a B-scan in {ref_path}")
        _report_unpaired(pred_only, ref_only, "B-scan")
        loaded = [(refs.cases[0].case_id, read_bscan_folder(pred_path, "mask", files=[p for p, _ in matched]),
                   read_bscan_folder(ref_path, "mask", files=[r for _, r in matched]), pred_path, ref_path)]
    else:
        pairs, pred_only, ref_only = pair_cases(preds, refs)
        _report_unpaired(pred_only, ref_only)
        for _, p, r in pairs:  # every header checked before the slow part
            probe_volume(p)
            probe_volume(r)
        loaded = [(cid, read_volume(p, kind="mask"), read_volume(r, kind="mask"), p, r) for cid, p, r in pairs]
    labels = labels or default_labels(refs, [v for _, pv, rv, _, _ in loaded for v in (pv, rv)])
    evaluator = VolumeEvaluator(labels)
    for cid, pv, rv, p, r in tqdm(loaded, desc="evaluate", unit="volume", disable=not progress):
        evaluator.add(cid, pv, rv, str(p), str(r))
    summary = evaluator.summary()
    summary["unpaired"] = {"prediction_only": pred_only, "reference_only": ref_only}
    if out is not None:
        write_summary(out, summary)
    return summary


def evaluate_checkpoint_on_volumes(checkpoint: str | Path, images: str | Path, masks: str | Path | None = None,
                                   out: str | Path | None = None, batch_size: int = 8,
                                   progress: bool = True, spacing_um: tuple[float, float] | None = None,
                                   postprocess: bool = True) -> dict:
    """Predict every volume of ``images`` in memory and score it against its reference.

    Each volume is segmented at its own B-scan spacing (``spacing_um`` overrides the headers) and
    scored on its own grid. The masks are post-processed as the bundle says unless ``postprocess``
    is False.

    References come from ``masks`` when given, else from the dataset itself (RETOUCH
    ``reference.mhd``, nnU-Net ``labelsTr``). Labels are the model's classes.
    """
    from segclr.inference.predict import Predictor
    from segclr.inference.volumes import segment_volume

    predictor = Predictor(checkpoint, postprocess=postprocess)
    image_set = find_cases(images)
    ref_set = find_cases(masks) if masks is not None else image_set
    refs = ref_set.by_id()
    labels = {i: n for i, n in enumerate(predictor.classes) if i > 0}
    evaluator = VolumeEvaluator(labels)
    todo = []
    for case in image_set.cases:
        if masks is not None and image_set.layout == "file" and ref_set.layout == "file":
            ref_path = ref_set.cases[0].image
        else:
            ref_case = refs.get(case.case_id)
            ref_path = None if ref_case is None else _reference_path(ref_case, ref_set)
        if ref_path is None:
            if masks is None and image_set.layout in ("retouch", "nnunet"):
                continue  # unlabeled case of a dataset
            raise InputError(f"{masks or images}: no reference for case {case.case_id} ({case.image})")
        if case.image is None:
            raise InputError(f"{image_set.path / case.case_id}: no image volume for case {case.case_id}")
        todo.append((case, ref_path))
    if not todo:
        raise InputError(f"{masks or images}: no labeled volumes to evaluate")
    for case, ref_path in todo:  # headers checked against data sizes before the long part starts
        probe_volume(case.image)
        probe_volume(ref_path)
    for case, ref_path in tqdm(todo, desc="evaluate", unit="volume", disable=not progress):
        volume = read_volume(case.image)
        pred = volume.with_array(segment_volume(predictor, volume, batch_size, spacing_um))
        evaluator.add(case.case_id, pred, read_volume(ref_path, kind="mask"), str(case.image), str(ref_path))
    summary = evaluator.summary()
    summary["checkpoint"] = str(checkpoint)
    if out is not None:
        write_summary(out, summary)
    return summary


def write_summary(path: str | Path, summary: dict) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2))


def format_volume_summary(summary: dict) -> str:
    rows = [f"{'class':<12}{'Dice (volume)':>15}{'Dice (B-scan)':>15}{'pooled Dice':>13}{'volume pred/ref':>17}"
            f"{'HD95 mm':>10}{'volumes':>9}"]
    for v in summary["mean"].values():
        rows.append(f"{v['name']:<12}{_fmt(v['Dice']):>15}{_fmt(v['Dice_slice_mean']):>15}"
                    f"{_fmt(v['pooled_Dice']):>13}{_fmt(v.get('area_ratio')):>17}{_fmt(v['HD95_mm']):>10}"
                    f"{v['n_cases']:>9}")
    return "\n".join(rows)


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


__all__ = ["VolumeEvaluator", "confusion", "dice_from_counts", "evaluate_checkpoint_on_volumes",
           "evaluate_volume_folders", "format_volume_summary", "hd95", "surface_distances"]
