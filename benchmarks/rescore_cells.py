"""Re-score finished study cells with today's inference code and compare with their committed records.

A change to the inference path (the network's layout, folding, post-processing code) must not move
a committed result. For every cell record in ``--cells`` whose trained model is still in ``--runs``
(``<runs>/<method>/<target>/seed<N>-<hash>/train/model.safetensors``, as ``segclr experiment``
leaves it), this scores the model again exactly as the runner does (on the test patients, or on the
validation split for ``evaluate_on: validation`` grids) and prints the committed and the new pooled
Dice and Dice per B-scan of every row, and how many match to 1e-9. Exit status 1 if any differs.

    python benchmarks/rescore_cells.py --cells docs/results/quality_search2/cells \\
        --runs runs/quality_search2/runs --on validation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from segclr.config import from_dict
from segclr.experiment.runner import bank_for, score_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", required=True, type=Path, help="folder of committed cell records (*.json)")
    ap.add_argument("--runs", required=True, type=Path, help="the experiment's runs folder (--out/runs)")
    ap.add_argument("--on", choices=["test", "validation"], default="test", help="what the grid scored")
    args = ap.parse_args(argv)
    banks: dict = {}
    same = differ = missing = 0
    for cell in sorted(args.cells.glob("*.json")):
        rec = json.loads(cell.read_text())
        model = (args.runs / rec["method"] / rec["target_device"] / f"seed{rec['seed']}-{rec['config_hash']}"
                 / "train" / "model.safetensors")
        if not model.is_file():
            missing += 1
            continue
        cfg = from_dict(rec["config"])
        summaries = score_model(model, bank_for(banks, cfg), cfg, args.on)
        for row in rec["rows"]:
            new = next(m for m in summaries[row["domain"]]["mean"].values() if m["name"] == row["class"])
            ok = abs(new["pooled_Dice"] - row["dice_pooled"]) < 1e-9 and abs(new["Dice"] - row["dice_mean"]) < 1e-9
            same, differ = same + ok, differ + (not ok)
            print(f"{'same' if ok else 'DIFFERS'}  {cell.stem} {row['domain']} {row['class']}: pooled "
                  f"{row['dice_pooled']:.6f} -> {new['pooled_Dice']:.6f}, per B-scan {row['dice_mean']:.6f} -> "
                  f"{new['Dice']:.6f}", flush=True)
    print(f"\n{same} rows the same, {differ} different; {missing} cells without their model in {args.runs}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
