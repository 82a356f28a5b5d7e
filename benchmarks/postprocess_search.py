"""Choose the post-processing on the VALIDATION split: minimum fluid-component size x fluid only inside the retina.

Every model bundle under ``--runs`` (the recipe search's runs, trained without the validation patients)
segments the held-out Spectralis patients once; each setting is then applied to the same raw masks and
scored with the nnU-Net rule (Dice per B-scan, pooled Dice, false-positive B-scans). The test patients
(9-10) are never read. Writes ``postprocess.json`` and ``postprocess.md`` to ``--out``.

    python benchmarks/postprocess_search.py --runs runs/quality_search/runs --val-patients 5 \
        --out docs/results/quality_search

``--methods`` limits it to some rows of the search (shell patterns), ``--min-px`` sets the sizes tried:
full-resolution models (496 rows) count a quarter of the area per working pixel, so their sizes run
4x higher (docs/quality_gpu.md):

    python benchmarks/postprocess_search.py --runs runs/quality_search2/runs --methods q7_full_res \
        --val-patients 4 5 --min-px 0 20 40 80 160 320 --out docs/results/quality_search2/postprocess_full_res
"""

from __future__ import annotations

import argparse
import json
import statistics
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from segclr.data.domains import DomainBank
from segclr.evaluation.metrics import bscan_summary as score
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text

MIN_PX = (0, 5, 10, 20, 40, 80)


RETINA_TOLERANCE = 0.002  # Dice on B-scans with fluid that the overlay defence may cost on clean validation B-scans
SIZE_TOLERANCE = 0.001


def choose(rows: list[dict]) -> dict:
    """The retina-only mask unless it costs more than RETINA_TOLERANCE (it is the defence against burned-in
    overlays, which clean validation B-scans do not have); then the largest minimum size within
    SIZE_TOLERANCE of that group's best Dice on the B-scans with fluid, with no more false-positive B-scans."""
    top = max(x["dice_fluid_bscans"] for x in rows)
    retina = [x for x in rows if x["retina_only"]]
    group = retina if max(x["dice_fluid_bscans"] for x in retina) >= top - RETINA_TOLERANCE else \
        [x for x in rows if not x["retina_only"]]
    best = max(x["dice_fluid_bscans"] for x in group)
    fewest = min(x["false_positive_bscans"] for x in group if x["dice_fluid_bscans"] >= best - SIZE_TOLERANCE)
    ok = [x for x in group if x["dice_fluid_bscans"] >= best - SIZE_TOLERANCE and x["false_positive_bscans"] <= fewest]
    return max(ok, key=lambda x: x["min_component_px"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/quality_search/runs"))
    ap.add_argument("--val-patients", type=int, nargs="+", default=[5])
    ap.add_argument("--out", type=Path, default=Path("docs/results/quality_search"))
    ap.add_argument("--methods", nargs="+", default=["*"], help="rows of the search to use (shell patterns)")
    ap.add_argument("--min-px", type=int, nargs="+", default=list(MIN_PX),
                    help=f"minimum component sizes tried, in working pixels (default {' '.join(map(str, MIN_PX))})")
    args = ap.parse_args(argv)
    bundles = sorted(b for b in args.runs.glob("*/*/*/train/model.safetensors")
                     if any(fnmatch(b.parts[-5], p) for p in args.methods))
    if not bundles:
        raise SystemExit(f"{args.runs}: no model bundles of {' '.join(args.methods)} (train the search first)")
    bank = DomainBank(0)
    vols = [v for v in bank.volumes("spectralis", "source_train") if v.patient in set(args.val_patients)]
    images = [img for v in vols for img in v.images]
    refs = [m for v in vols for m in v.masks]
    spacing = vols[0].spacing_um
    sizes = sorted(set(args.min_px) | {0})  # 0: the raw masks, always scored
    settings = [(k, r) for r in (False, True) for k in sizes]
    per_model: dict[str, dict] = {}
    for bundle in bundles:
        name = "/".join(bundle.parts[-5:-2])
        pred = Predictor(bundle, postprocess=False)
        if set(pred.meta["training"]["config"]["data"].get("val_patients", [])) != set(args.val_patients):
            print(f"skip {name}: trained with other validation patients")
            continue
        raw = np.stack([pred(img, spacing) for img in images])
        per_model[name] = {}
        for k, r in settings:
            masks = pred.postprocess_masks(raw, images, spacing, {"min_component_px": k, "retina_only": r})
            per_model[name][f"{k}/{r}"] = score(masks, refs)
        print(f"{name}: raw {per_model[name]['0/False']}", flush=True)
    rows = []
    for k, r in settings:
        vals = [m[f"{k}/{r}"] for m in per_model.values()]
        rows.append({"min_component_px": k, "retina_only": r,
                     **{key: statistics.mean(v[key] for v in vals) for key in
                        ("dice_fluid_bscans", "dice_pooled", "false_positive_bscans")}})
    best = choose(rows)
    atomic_write_text(args.out / "postprocess.json", json.dumps({"val_patients": args.val_patients, "models": per_model,
                                                                 "mean": rows, "chosen": best}, indent=1))
    empty = next(iter(per_model.values()))["0/False"]["empty_bscans"]
    extra = ("" if args.methods == ["*"] else f" --methods {' '.join(args.methods)}") + \
        ("" if sizes == list(MIN_PX) else f" --min-px {' '.join(map(str, sizes))}")
    lines = ["# Post-processing, chosen on validation", "",
             f"Models: the {len(per_model)} recipe-search bundles under `{args.runs}` (trained without Spectralis "
             f"patient(s) {args.val_patients}). Scored on those patients' {len(images)} B-scans ({empty} without "
             "fluid); the test patients were not read. Mean over the models.", "",
             f"Regenerate: `python benchmarks/postprocess_search.py --runs {args.runs} --val-patients "
             f"{' '.join(map(str, args.val_patients))}{extra} --out {args.out}`", "",
             "| min component (working px) | fluid only in the retina | Dice on B-scans with fluid | pooled Dice | "
             f"false-positive B-scans (of {empty}) |", "|---|---|---|---|---|"]
    for x in rows:
        mark = " **(chosen)**" if x is best else ""
        lines.append(f"| {x['min_component_px']}{mark} | {'yes' if x['retina_only'] else 'no'} | "
                     f"{x['dice_fluid_bscans']:.4f} | {x['dice_pooled']:.4f} | {x['false_positive_bscans']:.2f} |")
    lines += ["", "Rule: fluid only inside the retina unless that "
              f"costs more than {RETINA_TOLERANCE} Dice on the B-scans with fluid (it defends against burned-in "
              f"overlays, which clean validation B-scans lack); then the largest minimum size within "
              f"{SIZE_TOLERANCE} of the best, with the fewest false-positive B-scans."]
    atomic_write_text(args.out / "postprocess.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
