"""Dice with the nnU-Net rule, per B-scan and pooled.

nnU-Net rule: Dice = 2 TP / (2 TP + FP + FN) per class; NaN only when reference and
prediction are both empty (nothing to find, nothing found); a false positive on an empty
reference gives 0. The per-B-scan mean skips NaN. The pooled Dice sums TP/FP/FN over all
B-scans of a domain first, so large lesions weigh more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def confusion(pred: np.ndarray, ref: np.ndarray, label: int) -> tuple[int, int, int]:
    """(TP, FP, FN) of one class between two integer masks of the same shape."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    p, r = pred == label, ref == label
    return int(np.count_nonzero(p & r)), int(np.count_nonzero(p & ~r)), int(np.count_nonzero(~p & r))


def dice_from_counts(tp: int, fp: int, fn: int) -> float:
    denom = 2 * tp + fp + fn
    return float("nan") if denom == 0 else 2.0 * tp / denom


def dice(pred: np.ndarray, ref: np.ndarray, label: int = 1) -> float:
    return dice_from_counts(*confusion(pred, ref, label))


def nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


@dataclass
class DiceAccumulator:
    """Collects per-case counts for several classes; gives per-case, mean and pooled Dice."""

    labels: dict[int, str]
    cases: list[dict] = field(default_factory=list)

    def add(self, name: str, pred: np.ndarray, ref: np.ndarray) -> dict:
        metrics = {}
        for label in self.labels:
            tp, fp, fn = confusion(pred, ref, label)
            metrics[str(label)] = {
                "Dice": dice_from_counts(tp, fp, fn), "TP": tp, "FP": fp, "FN": fn,
                "n_pred": tp + fp, "n_ref": tp + fn,
            }
        case = {"case": name, "metrics": metrics}
        self.cases.append(case)
        return case

    def per_label(self) -> dict[str, dict[str, float]]:
        out = {}
        for label, name in self.labels.items():
            per_case = [c["metrics"][str(label)] for c in self.cases]
            tp, fp, fn = (sum(m[k] for m in per_case) for k in ("TP", "FP", "FN"))
            out[str(label)] = {
                "name": name,
                "Dice": nanmean([m["Dice"] for m in per_case]),
                "pooled_Dice": dice_from_counts(tp, fp, fn),
                "area_ratio": area_ratio(tp + fp, tp + fn),
                "n_cases": len(per_case),
                "n_nan": sum(math.isnan(m["Dice"]) for m in per_case),
            }
        return out

    def summary(self) -> dict:
        """nnU-Net-like summary: ``metric_per_case``, ``mean`` (per label), ``foreground_mean``."""
        per_label = self.per_label()
        fg = [v for k, v in per_label.items()]
        return {
            "metric_per_case": [
                {"reference_file": c["case"], "prediction_file": c["case"], "metrics": c["metrics"]} for c in self.cases
            ],
            "mean": per_label,
            "foreground_mean": {
                "Dice": nanmean([v["Dice"] for v in fg]),
                "pooled_Dice": nanmean([v["pooled_Dice"] for v in fg]),
            },
        }


def bscan_summary(preds: list[np.ndarray], refs: list[np.ndarray], label: int = 1) -> dict:
    """One class over a set of B-scans, as the recipe searches report it (nnU-Net rule, via :class:`DiceAccumulator`).

    ``dice_pooled``; ``dice_per_bscan`` (the mean over B-scans, skipping those where both masks are empty);
    ``dice_fluid_bscans`` (the mean over B-scans whose reference has the class); ``false_positive_bscans`` (of
    the ``empty_bscans`` whose reference lacks it, those where the prediction has it).
    """
    acc = DiceAccumulator({label: str(label)})
    for i, (p, r) in enumerate(zip(preds, refs)):
        acc.add(str(i), p, r)
    summary = acc.per_label()[str(label)]
    return {"dice_pooled": summary["pooled_Dice"], "dice_per_bscan": summary["Dice"],
            **bscan_counts([c["metrics"][str(label)] for c in acc.cases])}


def bscan_counts(per_case: list[dict]) -> dict:
    """From one class's per-case metrics (``Dice``, ``n_ref``, ``n_pred``): ``dice_fluid_bscans`` (mean Dice over the
    B-scans whose reference has the class), ``false_positive_bscans`` and ``empty_bscans`` (see :func:`bscan_summary`),
    and ``area_ratio`` (:func:`area_ratio` over all of them)."""
    fluid = [m["Dice"] for m in per_case if m["n_ref"] > 0]
    empty = [m for m in per_case if m["n_ref"] == 0]
    return {"dice_fluid_bscans": float(np.mean(fluid)) if fluid else float("nan"),
            "false_positive_bscans": sum(m["n_pred"] > 0 for m in empty), "empty_bscans": len(empty),
            "area_ratio": area_ratio(sum(m["n_pred"] for m in per_case), sum(m["n_ref"] for m in per_case))}


def area_ratio(n_pred: int, n_ref: int) -> float:
    """Predicted over reference area of a class, summed over cases: the bias of a fluid volume read off the masks
    (1 = unbiased, > 1 over-estimates; Dice does not show it). NaN when the references hold none."""
    return float(n_pred) / n_ref if n_ref > 0 else float("nan")
