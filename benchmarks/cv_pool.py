"""Pool a cross-validated search: each seed's folds together score every training patient out of fold.

A validation split of two patients is small (22 B-scans, 3 fluid-free: one false-positive B-scan moves Dice per
B-scan by 1/22). In a cross-validated search each row is trained once per fold, every fold holding out other
training patients (``data.val_patients``), so that together the folds validate every training patient with a model
that never saw it. This reads the folds' committed cell records (``--folds``: the baseline's rows, one per fold;
``--lever``: a lever's rows in the same fold order) and, per seed, pools their per-B-scan records (pixel counts,
Dice) into one score over all held-out B-scans: pooled Dice, Dice per B-scan (nnU-Net rule), Dice on the B-scans
with fluid, false-positive B-scans, and the predicted over graded fluid area. With ``--lever``, the paired
differences per seed and the search's rule: kept only if the mean paired difference is > 0 in pooled Dice and in
Dice per B-scan, and Dice per B-scan rises on each seed. The test patients are never read: only validation cells.

    python benchmarks/cv_pool.py --cells docs/results/recipe_levers/cells \\
        --folds v0_recipe v0_fold12 v0_fold3 --lever v3_component_crops v3_fold12 v3_fold3 --seeds 0 1 \\
        --out docs/results/recipe_levers/cv_v3.md

Exit status 2 when a cell is missing, the folds overlap, or a lever fold holds out other patients than the
baseline's; 0 otherwise (the verdict is printed, not signalled).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if (SRC / "segclr").is_dir() and str(SRC) not in sys.path:  # a clone without `pip install -e .`
    sys.path.insert(0, str(SRC))

from segclr.evaluation.metrics import bscan_counts, dice_from_counts, nanmean  # noqa: E402
from segclr.io.atomic import atomic_write_text  # noqa: E402


class CVError(Exception):
    """A search whose folds cannot be pooled (missing cell, overlapping or mismatched folds)."""


def load_cells(cells: Path) -> dict[tuple[str, int], dict]:
    return {(r["method"], r["seed"]): r for r in (json.loads(p.read_text()) for p in sorted(cells.glob("*.json")))}


def fold_cases(rec: dict, domain: str, cls: str) -> list[dict]:
    """A cell's per-B-scan records of one domain and class, with its true positives recovered from Dice."""
    out = []
    for c in rec["cases"]:
        if c["domain"] != domain or c["class"] != cls:
            continue
        d, n_ref, n_pred = float(c["dice"]), int(c["n_ref"]), int(c["n_pred"])
        tp = 0 if math.isnan(d) else round(d * (n_ref + n_pred) / 2)  # Dice = 2 TP / (n_ref + n_pred)
        out.append({"case": c["case"], "Dice": d, "n_ref": n_ref, "n_pred": n_pred, "TP": tp})
    return out


def pooled_scores(cases: list[dict]) -> dict:
    """One score over B-scans from several folds (each B-scan once)."""
    tp = sum(c["TP"] for c in cases)
    n_ref, n_pred = sum(c["n_ref"] for c in cases), sum(c["n_pred"] for c in cases)
    return {"pooled": dice_from_counts(tp, n_pred - tp, n_ref - tp), "per_bscan": nanmean([c["Dice"] for c in cases]),
            **bscan_counts(cases), "n": len(cases)}


def pool_row(cells: dict, folds: list[str], seed: int, domain: str, cls: str) -> tuple[dict, dict, list[list[int]]]:
    """(pooled scores, per-fold scores, each fold's held-out patients) of one row's folds for one seed."""
    cases, per_fold, held = [], {}, []
    for method in folds:
        rec = cells.get((method, seed))
        if rec is None:
            raise CVError(f"no cell record of {method} seed {seed}")
        patients = sorted(rec["config"]["data"].get("val_patients") or [])
        if not patients:
            raise CVError(f"{method} seed {seed}: its config holds out no patients (not a validation cell)")
        if set(patients) & {p for h in held for p in h}:
            raise CVError(f"{method}: its held-out patients {patients} overlap another fold's ({held})")
        held.append(patients)
        fc = fold_cases(rec, domain, cls)
        if not fc:
            raise CVError(f"{method} seed {seed}: no per-B-scan records of {domain}/{cls} in its cell")
        per_fold[method] = pooled_scores(fc)
        cases += fc
    return pooled_scores(cases), per_fold, held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", required=True, type=Path, help="folder of the search's committed cell records")
    ap.add_argument("--folds", required=True, nargs="+", help="the baseline's rows, one per fold")
    ap.add_argument("--lever", nargs="+", default=None, help="a lever's rows, in the same fold order")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--domain", default="spectralis")
    ap.add_argument("--cls", default="fluid", help="the class scored")
    ap.add_argument("--out", type=Path, default=None, help="write the table here (Markdown) and a .json beside it")
    args = ap.parse_args(argv)
    if args.lever is not None and len(args.lever) != len(args.folds):
        ap.error(f"--lever names {len(args.lever)} rows for {len(args.folds)} folds")
    cells = load_cells(args.cells)
    rows = {"baseline": args.folds, **({"lever": args.lever} if args.lever else {})}
    result: dict = {"folds": {}, "seeds": {}}
    try:
        for seed in args.seeds:
            result["seeds"][seed] = {}
            for role, names in rows.items():
                pooled, per_fold, held = pool_row(cells, names, seed, args.domain, args.cls)
                if role == "lever" and held != result["folds"]["baseline"]:
                    raise CVError(f"the lever's folds hold out {held}, the baseline's {result['folds']['baseline']}")
                result["folds"][role] = held
                result["seeds"][seed][role] = {"pooled": pooled, "per_fold": per_fold}
    except CVError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = report(result, args)
    print(text)
    if args.out is not None:
        cmd = " ".join(["python benchmarks/cv_pool.py", *(argv if argv is not None else sys.argv[1:])])
        atomic_write_text(args.out, f"# Cross-validated validation\n\nRegenerate: `{cmd}`\n\n" + text)
        atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=1, default=str))
    return 0


def _row(name: str, s: dict) -> str:
    return (f"| {name} | {s['n']} | {s['pooled']:.3f} | {s['per_bscan']:.3f} | {s['dice_fluid_bscans']:.3f} | "
            f"{s['false_positive_bscans']} of {s['empty_bscans']} | {s['area_ratio']:.2f} |")


def report(result: dict, args) -> str:
    held = result["folds"]["baseline"]
    union = sorted(p for h in held for p in h)
    lines = [f"Folds hold out patients {' | '.join(', '.join(map(str, h)) for h in held)}: together patients "
             f"{', '.join(map(str, union))}, each scored by the fold model that did not train on it. Domain "
             f"{args.domain}, class {args.cls}, seeds {', '.join(map(str, args.seeds))}.", "",
             "| row, seed | B-scans | pooled Dice | Dice per B-scan | on B-scans with fluid | false-positive B-scans | "
             "fluid area, predicted / graded |", "|---|---|---|---|---|---|---|"]
    for seed, by in result["seeds"].items():
        for role, names in (("baseline", args.folds), ("lever", args.lever)):
            if role not in by:
                continue
            lines.append(_row(f"**{names[0]} (all folds), seed {seed}**", by[role]["pooled"]))
            lines += [_row(f"{m}, seed {seed}", s) for m, s in by[role]["per_fold"].items()]
    if args.lever:
        dp = [by["lever"]["pooled"]["pooled"] - by["baseline"]["pooled"]["pooled"] for by in result["seeds"].values()]
        db = [by["lever"]["pooled"]["per_bscan"] - by["baseline"]["pooled"]["per_bscan"]
              for by in result["seeds"].values()]
        keep = statistics.fmean(dp) > 0 and statistics.fmean(db) > 0 and all(d > 0 for d in db)
        result["verdict"] = {"pooled": dp, "per_bscan": db, "kept": keep}
        lines += ["", f"Paired differences, {args.lever[0]} - {args.folds[0]} over all folds, per seed: pooled "
                  f"{', '.join(f'{d:+.3f}' for d in dp)} (mean {statistics.fmean(dp):+.3f}); Dice per B-scan "
                  f"{', '.join(f'{d:+.3f}' for d in db)} (mean {statistics.fmean(db):+.3f}).",
                  "", "Rule (fixed in the grid file before the folds ran): kept only if both means are > 0 and Dice "
                  f"per B-scan rises on each seed. Verdict: **{'kept' if keep else 'not kept'}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
