"""Held-out evaluation: score a model on the ``test`` role of a dataset file, per domain.

``segclr evaluate --checkpoint M --images dataset.yaml`` lands here. The dataset file is the one
``fit`` trains from (``data.dataset``, see :func:`segclr.data.domains.load_dataset`); by default
only its ``role: test`` volumes are scored, so the training volumes never enter the numbers.
Every B-scan is scored with the nnU-Net Dice rule (as ``evaluate`` does for B-scan folders), per
domain and over all domains. Volumes without labels are skipped and counted.
"""

from __future__ import annotations

import json
from pathlib import Path

from segclr.data.domains import DATASET_ROLES, load_dataset
from segclr.evaluation.evaluate import score_pairs
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError

DATASET_SUFFIXES = (".yaml", ".yml")


def is_dataset_file(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix.lower() in DATASET_SUFFIXES and path.is_file()


def evaluate_dataset(checkpoint: str | Path, dataset: str | Path, role: str = "test", out: str | Path | None = None,
                     progress: bool = True, postprocess: bool = True) -> dict:
    """nnU-Net-like summary over the labeled ``role`` volumes of ``dataset``, plus ``per_domain`` summaries.

    Predictions are post-processed as the bundle says unless ``postprocess`` is False
    (``summary["postprocess"]``: what was applied, None for nothing).
    """
    if role not in DATASET_ROLES:
        raise InputError(f"--role {role!r}: expected one of {', '.join(DATASET_ROLES)}")
    domains = load_dataset(dataset)
    selected = {d: [v for v in vols if v.role == role] for d, vols in domains.items()}
    labeled = {d: [v for v in vols if v.labeled] for d, vols in selected.items()}
    if not any(labeled.values()):
        roles = sorted({v.role for vols in domains.values() for v in vols if v.labeled})
        raise InputError(f"{dataset}: no labeled volumes with role {role} (labeled roles in the file: "
                         f"{', '.join(roles) or 'none'}); add 'role: {role}' entries with a 'label', or pass --role")
    predictor = Predictor(checkpoint, postprocess=postprocess)
    per_domain, everything = {}, []
    for d, vols in labeled.items():
        cases = [(f"{d}/{name}", img, msk, v.spacing_um) for v in vols
                 for name, img, msk in zip(v.names, v.images, v.masks)]
        if cases:
            per_domain[d] = score_pairs(predictor, cases, progress=progress, desc=f"evaluate {d}",
                                        total=len(cases)).summary()
            everything += cases
    summary = score_pairs(predictor, everything, progress=False).summary() if len(per_domain) > 1 \
        else dict(next(iter(per_domain.values())))
    summary.update({
        "checkpoint": str(checkpoint), "dataset": str(dataset), "role": role,
        "postprocess": predictor.applied_postprocess,
        "per_domain": {d: {"mean": s["mean"], "foreground_mean": s["foreground_mean"],
                           "n_bscans": len(s["metric_per_case"])} for d, s in per_domain.items()},
        "skipped_unlabeled_volumes": sum(len(selected[d]) - len(labeled[d]) for d in selected),
    })
    if out is not None:
        atomic_write_text(out, json.dumps(summary, indent=2))
    return summary


def format_dataset_summary(summary: dict) -> str:
    """One line per domain (and the total): Dice per B-scan, pooled Dice, predicted over reference area, B-scans."""
    rows = [f"role {summary['role']} of {summary['dataset']} (held-out volumes only"
            + (")" if summary["role"] == "test" else "; NOT held out: this role is used in training)"),
            f"{'domain':<16}{'Dice (per B-scan)':>20}{'pooled Dice':>14}{'area pred/ref':>15}{'B-scans':>9}"]
    items = list(summary["per_domain"].items())
    if len(items) > 1:
        items.append(("all", {"foreground_mean": summary["foreground_mean"], "mean": summary["mean"],
                              "n_bscans": len(summary["metric_per_case"])}))
    for d, s in items:
        fg = s["foreground_mean"]
        classes = s.get("mean", {})
        # the area ratio is per class: on the domain's line only when it has one class
        ratio = next(iter(classes.values())).get("area_ratio") if len(classes) == 1 else None
        rows.append(f"{d:<16}{_fmt(fg['Dice']):>20}{_fmt(fg['pooled_Dice']):>14}{_fmt(ratio):>15}{s['n_bscans']:>9}")
        if len(classes) > 1:  # several foreground classes: one line each under the domain's mean
            rows += [f"  {v['name']:<14}{_fmt(v['Dice']):>20}{_fmt(v['pooled_Dice']):>14}"
                     f"{_fmt(v.get('area_ratio')):>15}"
                     for v in classes.values()]
    if summary.get("skipped_unlabeled_volumes"):
        rows.append(f"({summary['skipped_unlabeled_volumes']} unlabeled volume(s) of this role skipped)")
    return "\n".join(rows)


def _fmt(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


__all__ = ["evaluate_dataset", "format_dataset_summary", "is_dataset_file"]


def training_split_note(images_dir: str | Path) -> str | None:
    """A warning when a B-scan folder written by ``segclr simulate`` holds training patients' B-scans."""
    import csv

    images_dir = Path(images_dir)
    index = images_dir.parent / "index.csv"
    if not images_dir.is_dir() or not index.is_file():
        return None
    try:
        with index.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if (images_dir / r.get("file", "")).is_file()]
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    train = [r for r in rows if r.get("split") not in (None, "", "test")]
    if not train:
        return None
    splits = sorted({r["split"] for r in train})
    return (f"note: {len(train)} of {len(rows)} B-scans in {images_dir} belong to training patients "
            f"({', '.join(splits)} in {index}); for held-out scores write the test patients only "
            f"(segclr simulate --patients 9,10) or evaluate a dataset file's test role")
