"""Re-score finished study cells with today's inference code and compare with their committed records.

A change to the inference path (the network's layout, folding, post-processing code) must not move
a committed result. For every cell record in ``--cells`` whose trained model is still in ``--runs``
(``<runs>/<method>/<target>/seed<N>-<hash>/train/model.safetensors``, as ``segclr experiment``
leaves it), this scores the model again exactly as the runner does (on the test patients, or on the
validation split for ``evaluate_on: validation`` grids) and prints the committed and the new pooled
Dice and Dice per B-scan of every row, and how many match to 1e-9. Exit status 1 if any differs.

    python benchmarks/rescore_cells.py --cells docs/results/quality_search2/cells \\
        --runs runs/quality_search2/runs --on validation

``--min-component-px N`` (with ``--methods``) asks another question: the same models scored with a
different minimum fluid component (the cell's retina-mask setting kept). Their rows then differ by
design, so it prints them, with each row's change, and exits 0; nothing is written. Exit status 2
when nothing was re-scored (no cell matched, or no model was found). For the GPU
search's second comparison (configs/experiments/quality_search_gpu.yaml, docs/quality_gpu.md):

    python benchmarks/rescore_cells.py --cells docs/results/quality_search_gpu/cells \\
        --runs runs/quality_search_gpu/runs --on validation --methods 'g1*' 'g2*' --min-component-px 320
"""

from __future__ import annotations

import argparse
import json
import sys
from fnmatch import fnmatch
from pathlib import Path

from segclr.evaluation.metrics import bscan_counts
from segclr.experiment.runner import bank_for, score_model, stored_config, trained_model
from segclr.io.atomic import atomic_write_text


def class_counts(summary: dict, name: str) -> dict:
    """:func:`segclr.evaluation.metrics.bscan_counts` of class ``name`` in an evaluation summary."""
    key = next(k for k, m in summary["mean"].items() if m["name"] == name)
    return bscan_counts([c["metrics"][key] for c in summary["metric_per_case"]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", required=True, type=Path, help="folder of committed cell records (*.json)")
    ap.add_argument("--runs", required=True, type=Path, nargs="+",
                    help="the experiment's runs folder (--out/runs); several are searched in turn (gpu_pool.py "
                         "gives each cell its own: <scratch>/runs/*/runs)")
    ap.add_argument("--on", choices=["test", "validation"], default="test", help="what the grid scored")
    ap.add_argument("--methods", nargs="+", default=["*"], help="rows to re-score (shell patterns; default all)")
    ap.add_argument("--min-component-px", type=int, default=None,
                    help="score with this minimum fluid component instead of the bundle's (a what-if: exit 0)")
    ap.add_argument("--json", type=Path, default=None,
                    help="also write every re-scored row (pooled Dice, Dice per B-scan, Dice on the B-scans with "
                         "fluid, false-positive B-scans) to this file")
    args = ap.parse_args(argv)
    banks: dict = {}
    rows_out: list[dict] = []
    same = differ = missing = 0
    for cell in sorted(args.cells.glob("*.json")):
        rec = json.loads(cell.read_text())
        if not any(fnmatch(rec["method"], p) for p in args.methods):
            continue
        cfg = stored_config(rec["config"])  # keys the cell predates at the behaviour it ran with
        model = trained_model(rec, args.runs)
        if model is None:
            missing += 1
            continue
        override = None if args.min_component_px is None else {
            "min_component_px": args.min_component_px, "retina_only": cfg.postprocess.retina_only}
        summaries = score_model(model, bank_for(banks, cfg), cfg, args.on, postprocess=override)
        for row in rec["rows"]:
            new = next(m for m in summaries[row["domain"]]["mean"].values() if m["name"] == row["class"])
            rows_out.append({"method": rec["method"], "seed": rec["seed"], "domain": row["domain"],
                             "class": row["class"],
                             "pooled_Dice": new["pooled_Dice"], "Dice": new["Dice"],
                             **class_counts(summaries[row["domain"]], new["name"])})
            ok = abs(new["pooled_Dice"] - row["dice_pooled"]) < 1e-9 and abs(new["Dice"] - row["dice_mean"]) < 1e-9
            same, differ = same + ok, differ + (not ok)
            print(f"{'same' if ok else 'DIFFERS'}  {cell.stem} {row['domain']} {row['class']}: pooled "
                  f"{row['dice_pooled']:.6f} -> {new['pooled_Dice']:.6f} "
                  f"({new['pooled_Dice'] - row['dice_pooled']:+.4f}), "
                  f"per B-scan {row['dice_mean']:.6f} -> {new['Dice']:.6f} ({new['Dice'] - row['dice_mean']:+.4f})",
                  flush=True)
    what = "" if args.min_component_px is None else f" (minimum fluid component {args.min_component_px} px)"
    if args.json is not None and rows_out:
        atomic_write_text(args.json, json.dumps({"min_component_px": args.min_component_px, "on": args.on,
                                                 "rows": rows_out}, indent=1))
    print(f"\n{same} rows the same, {differ} different{what}; {missing} cells without their model in "
          f"{' '.join(map(str, args.runs))}")
    if same + differ == 0:
        print("error: nothing was re-scored (no cell matched --methods, or none has its model under --runs)",
              file=sys.stderr)
        return 2
    return 1 if differ and args.min_component_px is None else 0


if __name__ == "__main__":
    sys.exit(main())
