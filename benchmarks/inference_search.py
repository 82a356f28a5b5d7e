"""Inference-time levers, scored on the VALIDATION split: the fluid threshold, flip test-time augmentation, ensembles.

No training: the recipe search's bundles (trained on Spectralis patients 1-3, ``--val-patients`` held out)
segment the held-out patients once per setting, with the shipped post-processing after the class pick. The
test patients (9-10) are never read.

* ``threshold t``: a pixel is fluid when the fluid classes' summed probability is >= t (0.5 is the argmax of
  a two-class model), then the likeliest fluid class; lower t favours recall (small pockets).
* ``flip``: the probabilities of the B-scan and of its left-right mirror image, averaged (nnU-Net mirrors).
* ``ensemble``: the probabilities of several models (seeds) averaged. Reported, not chosen: with one set of
  seeds there is one ensemble, so there is no spread over seeds to judge it by.

Rule, fixed before the first run: a setting replaces the default (t 0.5, no flip) only if, over the models,
the mean paired difference is > 0 in pooled Dice and in Dice per B-scan and Dice per B-scan rises for every
model; among the settings that pass, the one with the highest mean Dice per B-scan.

    python benchmarks/inference_search.py --runs runs/quality_search2/runs/q2_fluid_crop_08 --val-patients 4 5 \
        --out docs/results/quality_search2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from segclr.data.domains import DomainBank
from segclr.evaluation.metrics import bscan_summary as score
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text

THRESHOLDS = (0.3, 0.4, 0.5)
DEFAULT = (0.5, False)


def probabilities(pred: Predictor, images: list[np.ndarray], spacing, flip: bool) -> list[torch.Tensor]:
    """(C, H, W) probabilities per B-scan; with ``flip`` the mean with the mirrored B-scan's (mirrored back)."""
    out = []
    for img in images:
        p = pred.probabilities(img, spacing)
        if flip:
            p = (p + pred.probabilities(np.ascontiguousarray(img[:, ::-1]), spacing).flip(-1)) / 2
        out.append(p)
    return out


def masks_at(probs: torch.Tensor, t: float) -> np.ndarray:
    """Fluid where the fluid classes' summed probability is >= t, then the likeliest fluid class."""
    fluid = probs[1:].sum(0) >= t
    cls = 1 + torch.max(probs[1:], 0).indices
    return torch.where(fluid, cls, 0).numpy().astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/quality_search2/runs/q2_fluid_crop_08"))
    ap.add_argument("--val-patients", type=int, nargs="+", default=[4, 5])
    ap.add_argument("--out", type=Path, default=Path("docs/results/quality_search2"))
    args = ap.parse_args(argv)
    bundles = sorted(args.runs.glob("*/*/train/model.safetensors"))
    if not bundles:
        raise SystemExit(f"{args.runs}: no model bundles (train the search first)")
    vols = [v for v in DomainBank(0).volumes("spectralis", "source_train") if v.patient in set(args.val_patients)]
    images = [img for v in vols for img in v.images]
    refs = [m for v in vols for m in v.masks]
    spacing = vols[0].spacing_um
    settings = [(t, f) for f in (False, True) for t in THRESHOLDS]
    per_model: dict[str, dict] = {}
    probs_by: dict[tuple[str, bool], list[torch.Tensor]] = {}
    preds: dict[str, Predictor] = {}
    for bundle in bundles:
        name = "/".join(bundle.parts[-4:-2])
        pred = Predictor(bundle, postprocess=False)
        if set(pred.meta["training"]["config"]["data"].get("val_patients", [])) != set(args.val_patients):
            raise SystemExit(f"{bundle}: trained with other validation patients")
        preds[name] = pred
        per_model[name] = {}
        for flip in (False, True):
            probs_by[(name, flip)] = probabilities(pred, images, spacing, flip)
            for t in THRESHOLDS:
                masks = pred.postprocess_masks(np.stack([masks_at(p, t) for p in probs_by[(name, flip)]]), images, spacing)
                per_model[name][f"{t}/{flip}"] = score(masks, refs)
        print(f"{name}: default {per_model[name]['0.5/False']}", flush=True)
    names = list(per_model)
    ensemble = {}
    first = preds[names[0]]
    for t, flip in settings:
        mean_probs = [torch.stack([probs_by[(n, flip)][i] for n in names]).mean(0) for i in range(len(images))]
        ensemble[f"{t}/{flip}"] = score(first.postprocess_masks(np.stack([masks_at(p, t) for p in mean_probs]), images, spacing), refs)

    keys = ("dice_pooled", "dice_per_bscan", "dice_fluid_bscans", "false_positive_bscans")
    base = f"{DEFAULT[0]}/{DEFAULT[1]}"
    rows = []
    for t, flip in settings:
        k = f"{t}/{flip}"
        diffs = {m: {key: per_model[m][k][key] - per_model[m][base][key] for key in keys[:2]} for m in names}
        passes = (k != base and statistics.mean(d["dice_pooled"] for d in diffs.values()) > 0
                  and statistics.mean(d["dice_per_bscan"] for d in diffs.values()) > 0
                  and all(d["dice_per_bscan"] > 0 for d in diffs.values()))
        rows.append({"threshold": t, "flip": flip, "passes": passes,
                     **{key: statistics.mean(per_model[m][k][key] for m in names) for key in keys},
                     "diff_pooled": [diffs[m]["dice_pooled"] for m in names],
                     "diff_per_bscan": [diffs[m]["dice_per_bscan"] for m in names],
                     "ensemble": ensemble[k]})
    passing = [r for r in rows if r["passes"]]
    chosen = max(passing, key=lambda r: r["dice_per_bscan"]) if passing else next(
        r for r in rows if (r["threshold"], r["flip"]) == DEFAULT)
    atomic_write_text(args.out / "inference_search.json", json.dumps(
        {"val_patients": args.val_patients, "models": per_model, "rows": rows,
         "chosen": {"threshold": chosen["threshold"], "flip": chosen["flip"]}}, indent=1))

    empty = sum(not (r == 1).any() for r in refs)
    lines = ["# Inference-time levers, scored on validation", "",
             f"Models: the {len(names)} bundles under `{args.runs}` ({', '.join(names)}), trained without Spectralis "
             f"patients {args.val_patients}; scored on those patients' {len(images)} B-scans ({empty} without fluid) "
             "with the shipped post-processing. The test patients were not read. Mean over the models; "
             "paired differences against the default (threshold 0.5, no flip) per model.", "",
             f"Regenerate: `python benchmarks/inference_search.py --runs {args.runs} --val-patients "
             f"{' '.join(map(str, args.val_patients))} --out {args.out}`", "",
             "| fluid threshold | flip TTA | pooled Dice | Dice per B-scan | Dice on B-scans with fluid | "
             f"false-positive B-scans (of {empty}) | per-B-scan diff per model | passes | ensemble of the "
             f"{len(names)}: pooled / per B-scan / FP |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(chosen)**" if r is chosen else ""
        e = r["ensemble"]
        lines.append(f"| {r['threshold']}{mark} | {'yes' if r['flip'] else 'no'} | {r['dice_pooled']:.4f} | "
                     f"{r['dice_per_bscan']:.4f} | {r['dice_fluid_bscans']:.4f} | {r['false_positive_bscans']:.2f} | "
                     f"{' / '.join(f'{d:+.3f}' for d in r['diff_per_bscan'])} | "
                     f"{'yes' if r['passes'] else ('default' if (r['threshold'], r['flip']) == DEFAULT else 'no')} | "
                     f"{e['dice_pooled']:.4f} / {e['dice_per_bscan']:.4f} / {e['false_positive_bscans']} |")
    lines += ["", "Rule, fixed before the first run: a setting replaces the default only if the mean paired "
              "difference over the models is > 0 in pooled Dice and in Dice per B-scan and Dice per B-scan rises "
              "for every model; among those, the highest mean Dice per B-scan. The ensemble column is reported, "
              "not chosen from (one set of seeds gives one ensemble, no spread)."]
    atomic_write_text(args.out / "inference_search.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
