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

Second use (2026-11-28, fourteenth sitting; this paragraph committed before it ran): higher thresholds for the
full-resolution recipe. Its validation models mark more fluid than the references hold: summed over the 22
validation B-scans, 1.29-1.32x the reference fluid area for v0_recipe seeds 0-1, 1.2-1.4x for every row of
recipe_levers_cpu.yaml (n_pred / n_ref in the cell records). So thresholds above 0.5 are tried: 0.6, 0.7, 0.8,
no flip, on v0_recipe's models seeds 0-3 (seeds 2-3 trained for this), with the device guard. Same rule as
above, plus (iii): on the validation patients rendered as cirrus_like and as topcon_like, the mean paired
difference in pooled Dice is >= -0.010 on each. A threshold that passes becomes a post-processing setting stored
in the bundle (and can be turned off with it); none that passes leaves 0.5.

    python benchmarks/inference_search.py --runs runs/recipe_levers/runs/v0_recipe --seeds 0 1 2 3 \
        --val-patients 4 5 --thresholds 0.6 0.7 0.8 --no-flip --devices cirrus_like topcon_like \
        --out docs/results/recipe_levers --name threshold_search

Outcome: none passes (pooled Dice within 0.001 of 0.5's at every threshold; docs/quality.md 1j). The excess
fluid is marked with > 0.8 probability. Where it lies (benchmarks/fluid_excess.py on the same validation
B-scans, seeds 0-3; docs/results/recipe_levers/fluid_excess.md): of the predicted fluid pixels outside the
reference, 43-47 % are within 3 px of it, 33-35 % at 4-10 px and 18-23 % further away; the excess is
0.43-0.50x the reference's 128,025 fluid pixels, of which the models find 102,000-105,300. So most of the
excess lies along the reference's pockets, as if they were drawn wider than the graders drew them.

Third use (2026-11-28, fourteenth sitting; this paragraph committed before it ran): erode the predicted
fluid by 1, 2 or 3 px (4-connected steps, before the shipped post-processing) at threshold 0.5, no flip, on
the same four models, with the same rule (i)-(iii) and device guard. An erosion that passes becomes a
post-processing setting stored in the bundle; none that passes leaves the masks as they are.

    python benchmarks/inference_search.py --runs runs/recipe_levers/runs/v0_recipe --seeds 0 1 2 3 \
        --val-patients 4 5 --thresholds 0.5 --erode 1 2 3 --no-flip --devices cirrus_like topcon_like \
        --out docs/results/recipe_levers --name erosion_search

Outcome: none passes. 1 px leaves pooled Dice level (+0.0003) and loses Dice per B-scan on three of the four
models; 2 and 3 px lose both. Trimming a uniform margin removes as many true boundary pixels as excess ones:
the outlines differ from the graders' in shape, not by a constant margin (docs/quality.md 1j).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from segclr.config import from_dict
from segclr.evaluation.metrics import bscan_summary as score
from segclr.experiment.runner import bank_for, validation_volumes
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text

THRESHOLDS = (0.3, 0.4, 0.5)
DEFAULT = (0.5, False, 0)  # threshold, flip, erosion (px)


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


def erode_fluid(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` with its fluid (any class > 0) eroded by ``px`` pixels (4-connected steps); the surviving
    pixels keep their class."""
    if px <= 0:
        return mask
    kept = ndimage.binary_erosion(mask > 0, iterations=px)
    return np.where(kept, mask, 0).astype(mask.dtype)


def setting_key(t: float, flip: bool, erode: int) -> str:
    return f"{t}/{flip}/{erode}"


def passes_rule(diffs: dict[str, dict], guard: dict[str, float] | None = None, tolerance: float = -0.010) -> bool:
    """The rule: mean paired difference > 0 in pooled Dice and in Dice per B-scan, Dice per B-scan up for every
    model, and (with ``guard``: device -> mean paired pooled difference) every device's mean >= ``tolerance``."""
    return (statistics.mean(d["dice_pooled"] for d in diffs.values()) > 0
            and statistics.mean(d["dice_per_bscan"] for d in diffs.values()) > 0
            and all(d["dice_per_bscan"] > 0 for d in diffs.values())
            and all(v >= tolerance for v in (guard or {}).values()))


def bank_key(pred: Predictor) -> tuple:
    """The bank a model trained on (dataset, simulation seed, geometry): its validation B-scans come from there."""
    d = from_dict(pred.meta["training"]["config"]).data
    return d.dataset, d.simulation_seed, d.geometry


def validation_cases(pred: Predictor, banks: dict, domain: str):
    """(images, references, spacing) of the model's validation patients rendered as ``domain``, from the bank the
    model trained on (its simulation seed and geometry)."""
    cfg = from_dict(pred.meta["training"]["config"])
    vols = validation_volumes(bank_for(banks, cfg), cfg, domain)
    return [img for v in vols for img in v.images], [m for v in vols for m in v.masks], vols[0].spacing_um


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/quality_search2/runs/q2_fluid_crop_08"),
                    help="a search row's runs folder (<runs>/<target>/seed<N>-<hash>/train/model.safetensors)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds' models (default: all)")
    ap.add_argument("--val-patients", type=int, nargs="+", default=[4, 5])
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS),
                    help="fluid thresholds to try (0.5, the argmax, is always scored as the default)")
    ap.add_argument("--no-flip", action="store_true", help="skip the flip TTA settings")
    ap.add_argument("--erode", type=int, nargs="+", default=[0],
                    help="also erode the predicted fluid by these many pixels before the post-processing "
                         "(0, no erosion, is always scored)")
    ap.add_argument("--devices", nargs="+", default=[],
                    help="also score the validation patients rendered as these devices; a setting then passes only "
                         "if its mean paired pooled difference is >= -0.010 on each (the search's device guard)")
    ap.add_argument("--out", type=Path, default=Path("docs/results/quality_search2"))
    ap.add_argument("--name", default="inference_search", help="output file stem (<out>/<name>.{md,json})")
    args = ap.parse_args(argv)
    bundles = sorted(args.runs.glob("*/*/train/model.safetensors"))
    if args.seeds is not None:
        bundles = [b for b in bundles if any(b.parts[-3].startswith(f"seed{s}-") for s in args.seeds)]
    if not bundles:
        raise SystemExit(f"{args.runs}: no model bundles (train the search first)")
    thresholds = sorted(set(args.thresholds) | {DEFAULT[0]})
    flips = (False,) if args.no_flip else (False, True)
    erodes = sorted(set(args.erode) | {DEFAULT[2]})
    settings = [(t, f, e) for f in flips for t in thresholds for e in erodes]
    domains = ["spectralis", *args.devices]
    per_model: dict[str, dict] = {}  # model -> domain -> setting -> scores
    probs_by: dict[tuple[str, str, bool], list[torch.Tensor]] = {}
    preds: dict[str, Predictor] = {}
    banks: dict = {}
    cases: dict[str, tuple] = {}
    for bundle in bundles:
        name = "/".join(bundle.parts[-4:-2])
        pred = Predictor(bundle, postprocess=False)
        if set(pred.meta["training"]["config"]["data"].get("val_patients", [])) != set(args.val_patients):
            raise SystemExit(f"{bundle}: trained with other validation patients")
        if preds and bank_key(pred) != bank_key(next(iter(preds.values()))):
            raise SystemExit(f"{bundle}: trained on another bank (dataset, simulation seed, geometry) than "
                             f"{next(iter(preds))}: the models must be scored on the same B-scans")
        preds[name] = pred
        per_model[name] = {}
        for domain in domains:
            if domain not in cases:  # every model is scored on the same B-scans (checked above)
                cases[domain] = validation_cases(pred, banks, domain)
            images, refs, spacing = cases[domain]
            per_model[name][domain] = {}
            for flip in flips:
                probs_by[(name, domain, flip)] = probabilities(pred, images, spacing, flip)
                for t in thresholds:
                    for e in erodes:
                        masks = np.stack([erode_fluid(masks_at(p, t), e) for p in probs_by[(name, domain, flip)]])
                        per_model[name][domain][setting_key(t, flip, e)] = score(
                            pred.postprocess_masks(masks, images, spacing), refs)
        print(f"{name}: default {per_model[name]['spectralis'][setting_key(*DEFAULT)]}", flush=True)
    names = list(per_model)
    ensemble = {}
    first = preds[names[0]]
    images, refs, spacing = cases["spectralis"]
    for t, flip, e in settings:
        mean_probs = [torch.stack([probs_by[(n, "spectralis", flip)][i] for n in names]).mean(0)
                      for i in range(len(images))]
        masks = np.stack([erode_fluid(masks_at(p, t), e) for p in mean_probs])
        ensemble[setting_key(t, flip, e)] = score(first.postprocess_masks(masks, images, spacing), refs)

    keys = ("dice_pooled", "dice_per_bscan", "dice_fluid_bscans", "false_positive_bscans")
    base = setting_key(*DEFAULT)
    rows = []
    for t, flip, e in settings:
        k = setting_key(t, flip, e)
        src = {m: per_model[m]["spectralis"] for m in names}
        diffs = {m: {key: src[m][k][key] - src[m][base][key] for key in keys[:2]} for m in names}
        guard = {d: statistics.mean(per_model[m][d][k]["dice_pooled"] - per_model[m][d][base]["dice_pooled"]
                                    for m in names) for d in args.devices}
        rows.append({"threshold": t, "flip": flip, "erode_px": e, "passes": k != base and passes_rule(diffs, guard),
                     **{key: statistics.mean(src[m][k][key] for m in names) for key in keys},
                     "diff_pooled": [diffs[m]["dice_pooled"] for m in names],
                     "diff_per_bscan": [diffs[m]["dice_per_bscan"] for m in names],
                     "device_guard": guard,
                     "devices": {d: {key: statistics.mean(per_model[m][d][k][key] for m in names) for key in keys[:2]}
                                 for d in args.devices},
                     "ensemble": ensemble[k]})
    passing = [r for r in rows if r["passes"]]
    chosen = max(passing, key=lambda r: r["dice_per_bscan"]) if passing else next(
        r for r in rows if (r["threshold"], r["flip"], r["erode_px"]) == DEFAULT)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{args.name}.json", json.dumps(
        {"val_patients": args.val_patients, "models": per_model, "rows": rows,
         "chosen": {"threshold": chosen["threshold"], "flip": chosen["flip"], "erode_px": chosen["erode_px"]}},
        indent=1))

    empty = sum(not (r == 1).any() for r in refs)
    cmd = " ".join(["python benchmarks/inference_search.py", *(argv if argv is not None else sys.argv[1:])])
    lines = ["# Inference-time levers, scored on validation", "",
             f"Models: the {len(names)} bundles under `{args.runs}` ({', '.join(names)}), trained without Spectralis "
             f"patients {args.val_patients}; scored on those patients' {len(images)} B-scans ({empty} without fluid) "
             "with the shipped post-processing. The test patients were not read. Mean over the models; "
             "paired differences against the default (threshold 0.5, no flip, no erosion) per model.", "",
             f"Regenerate: `{cmd}`", "",
             "| fluid threshold | flip TTA | erosion (px) | pooled Dice | Dice per B-scan | "
             "Dice on B-scans with fluid | "
             f"false-positive B-scans (of {empty}) | per-B-scan diff per model | "
             + "".join(f"{d}: mean pooled diff | " for d in args.devices)
             + f"passes | ensemble of the {len(names)}: pooled / per B-scan / FP |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(args.devices) + "---|---|"]
    for r in rows:
        mark = " **(chosen)**" if r is chosen else ""
        e = r["ensemble"]
        is_default = (r["threshold"], r["flip"], r["erode_px"]) == DEFAULT
        verdict = "yes" if r["passes"] else ("default" if is_default else "no")
        lines.append(f"| {r['threshold']}{mark} | {'yes' if r['flip'] else 'no'} | {r['erode_px']} | "
                     f"{r['dice_pooled']:.4f} | "
                     f"{r['dice_per_bscan']:.4f} | {r['dice_fluid_bscans']:.4f} | {r['false_positive_bscans']:.2f} | "
                     f"{' / '.join(f'{d:+.3f}' for d in r['diff_per_bscan'])} | "
                     + "".join(f"{r['device_guard'][d]:+.4f} | " for d in args.devices)
                     + f"{verdict} | "
                     f"{e['dice_pooled']:.4f} / {e['dice_per_bscan']:.4f} / {e['false_positive_bscans']} |")
    lines += ["", "Rule, fixed before the first run: a setting replaces the default only if the mean paired "
              "difference over the models is > 0 in pooled Dice and in Dice per B-scan and Dice per B-scan rises "
              "for every model" + (", and the mean paired pooled difference on each device is >= -0.010"
                                   if args.devices else "")
              + "; among those, the highest mean Dice per B-scan. The ensemble column is reported, "
              "not chosen from (one set of seeds gives one ensemble, no spread)."]
    atomic_write_text(args.out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
