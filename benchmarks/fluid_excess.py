"""Where a search's models put fluid the graders did not: distance of the excess from the reference.

For each model bundle under ``--runs`` (a search row's runs folder, as ``segclr experiment`` leaves it),
segment the validation patients (``--val-patients``, held out of its training; the test patients are never
read) with the shipped post-processing, and count, over all their B-scans:

* reference fluid pixels, of them the predicted ones (true positives) and the missed ones;
* predicted fluid pixels outside the reference (the excess), binned by their distance to the nearest
  reference fluid pixel (Euclidean, pixels; B-scans without reference fluid put all their excess in
  the last bin).

A systematic boundary bias shows as excess concentrated within a few pixels of the reference.

    python benchmarks/fluid_excess.py --runs runs/recipe_levers/runs/v0_recipe --seeds 0 1 \\
        --out docs/results/recipe_levers/fluid_excess.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if (SRC / "segclr").is_dir() and str(SRC) not in sys.path:  # a clone without `pip install -e .`
    sys.path.insert(0, str(SRC))

from segclr.config import from_dict  # noqa: E402
from segclr.experiment.runner import bank_for, validation_volumes  # noqa: E402
from segclr.inference.predict import Predictor  # noqa: E402
from segclr.io.atomic import atomic_write_text  # noqa: E402

BINS = ((0, 1.5, "1"), (1.5, 2.5, "2"), (2.5, 3.5, "3"), (3.5, 5.5, "4-5"), (5.5, 10.5, "6-10"),
        (10.5, 20.5, "11-20"), (20.5, 50.5, "21-50"), (50.5, np.inf, "> 50 or no reference"))


def excess_counts(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Pixel counts of one B-scan: reference, true positives, and the excess per distance bin."""
    r, q = ref > 0, pred > 0
    dist = ndimage.distance_transform_edt(~r) if r.any() else np.full(r.shape, np.inf)
    d = dist[q & ~r]
    return {"ref": int(r.sum()), "tp": int((r & q).sum()),
            "excess": [int(((d > lo) & (d <= hi)).sum()) for lo, hi, _ in BINS]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, type=Path, help="a search row's runs folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds' models (default: all)")
    ap.add_argument("--val-patients", type=int, nargs="+", default=[4, 5])
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = ap.parse_args(argv)
    bundles = sorted(args.runs.glob("*/*/train/model.safetensors"))
    if args.seeds is not None:
        bundles = [b for b in bundles if any(b.parts[-3].startswith(f"seed{s}-") for s in args.seeds)]
    if not bundles:
        print(f"error: {args.runs}: no model bundles", file=sys.stderr)
        return 2
    banks: dict = {}
    head = ("| model | reference fluid px | predicted of them | excess px | excess / reference | "
            + " | ".join(f"excess at {name} px" for *_, name in BINS) + " |")
    lines = [head, "|" + "---|" * (5 + len(BINS))]
    for bundle in bundles:
        pred = Predictor(bundle)
        cfg = from_dict(pred.meta["training"]["config"])
        if set(cfg.data.val_patients) != set(args.val_patients):
            print(f"error: {bundle}: trained with validation patients {cfg.data.val_patients}", file=sys.stderr)
            return 2
        vols = validation_volumes(bank_for(banks, cfg), cfg)
        tot = {"ref": 0, "tp": 0, "excess": np.zeros(len(BINS), int)}
        for v in vols:
            for img, ref in zip(v.images, v.masks):
                c = excess_counts(pred(img, v.spacing_um), ref)
                tot["ref"] += c["ref"]
                tot["tp"] += c["tp"]
                tot["excess"] += c["excess"]
        ex = int(tot["excess"].sum())
        lines.append(f"| {'/'.join(bundle.parts[-4:-2])} | {tot['ref']:,} | {tot['tp']:,} | {ex:,} | "
                     f"{ex / max(tot['ref'], 1):.2f} | "
                     + " | ".join(f"{n / max(ex, 1):.1%}" for n in tot["excess"]) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        cmd = " ".join(["python benchmarks/fluid_excess.py", *(argv if argv is not None else sys.argv[1:])])
        atomic_write_text(args.out, f"# Predicted fluid outside the reference, by distance\n\nValidation patients "
                          f"{args.val_patients}, shipped post-processing. Regenerate: `{cmd}`\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
