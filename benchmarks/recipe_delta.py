"""What a new recipe changed, mode by mode: the same rows of two study grids side by side.

R2 ran first at the half-resolution recipe of its time (``r2_realistic_cpu``: 248 rows, 128-px crops, 800 steps)
and again on the recipe chosen on validation (``r2_recipe_cpu``: full resolution, 256-px crops, 1500 steps,
component-uniform fluid crops where a mode's check passed). This reads both grids' committed cell records and,
for every row they share (``--map NEW=OLD`` where the names differ), prints per domain each grid's mean and
standard deviation over seeds of pooled Dice and of Dice on the B-scans with fluid, the false-positive B-scans,
the training seconds (mean over the cells trained on a CPU), and the difference new - old with a 95 % Welch interval.

The comparison is **unpaired**: seed k of one recipe shares nothing with seed k of the other (other crops,
another schedule), so the seeds are two independent samples, and the Welch interval over 3-5 seeds a side is
wide. Both grids score the same test patients 9-10; this is a report of what the recipe did, nothing is chosen
from it. Training seconds depend on the machine each cell ran on, which the output names.

    python benchmarks/recipe_delta.py --old docs/results/r2_realistic_cpu/cells \\
        --new docs/results/r2_recipe_cpu/cells --map segclr_uda=segclr_uda_ch_a \\
        --out docs/results/r2_recipe_cpu/recipe_delta

Exit status 2 when a folder holds no cell records for the target, a record is unreadable, a named row is missing
from either grid or scored on no B-scan of a domain, or the grids share no row.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if (SRC / "segclr").is_dir() and str(SRC) not in sys.path:  # a clone without `pip install -e .`
    sys.path.insert(0, str(SRC))

from segclr.experiment.cells import describe_machines, read_cell  # noqa: E402
from segclr.experiment.stats import (dice_with_fluid, false_positive_scans, fmt_summary, seed_summary,  # noqa: E402
                                     welch_interval)
from segclr.io.atomic import atomic_write_text  # noqa: E402

METRICS = ("pooled", "fluid_bscans")


class DeltaError(Exception):
    """A grid without records, an unreadable record, or a named row missing from one of the grids."""


def load_grid(cells: Path, target: str) -> dict[str, list[dict]]:
    """method -> its cell records for ``target``, ordered by seed."""
    grid: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(cells.glob("*.json")):
        rec = read_cell(path)
        if rec is None:
            raise DeltaError(f"{path}: not a readable cell record")
        if rec["target_device"] == target:
            grid[rec["method"]].append(rec)
    if not grid:
        raise DeltaError(f"{cells}: no cell records for target {target!r}")
    return {m: sorted(recs, key=lambda r: r["seed"]) for m, recs in grid.items()}


def _on_cpu(record: dict) -> bool:
    """Trained on a CPU: GPU cells' seconds are left out of the training-time column, not averaged in."""
    return (record.get("machine") or {}).get("device", "cpu") == "cpu"


def row_scores(records: list[dict], domain: str, cls: str = "fluid") -> dict:
    """Per metric the summary over seeds (pooled Dice, Dice on B-scans with fluid), false-positive B-scans and
    the training seconds of the cells trained on a CPU."""
    method, target = records[0]["method"], records[0]["target_device"]
    pooled = {r["seed"]: float(row["dice_pooled"]) for r in records for row in r["rows"]
              if row["domain"] == domain and row["class"] == cls}
    cases = [c for r in records for c in r["cases"]]
    cpu_s = [float(r["train_seconds"]) for r in records if _on_cpu(r)]
    fluid = dice_with_fluid(cases, method, target, domain)
    return {"pooled": seed_summary(pooled), "fluid_bscans": seed_summary(fluid),
            "false_positive": false_positive_scans(cases, method, target, domain),
            "cpu_train_s": {"mean": float(np.mean(cpu_s)), "n": len(cpu_s)} if cpu_s else None}


def compare(new: dict[str, list[dict]], old: dict[str, list[dict]], pairs: list[tuple[str, str]],
            domains: list[str]) -> list[dict]:
    if not pairs:
        raise DeltaError("the two grids share no row (name the differing ones with --map NEW=OLD)")
    out = []
    for new_name, old_name in pairs:
        for grid, name, which in ((new, new_name, "new"), (old, old_name, "old")):
            if name not in grid:
                raise DeltaError(f"row {name!r} has no cell records in the {which} grid")
        for domain in domains:
            a, b = row_scores(new[new_name], domain), row_scores(old[old_name], domain)
            if a["pooled"] is None or b["pooled"] is None:
                raise DeltaError(f"row {new_name!r} / {old_name!r}: no pooled Dice on {domain!r} in one of the grids")
            entry = {"row": new_name, "old_row": old_name, "domain": domain, "new": a, "old": b}
            for metric in METRICS:
                entry[metric] = welch_interval(*((side[metric] or {}).get("values", []) for side in (a, b)))
            out.append(entry)
    return out


def _delta(d: dict) -> str:
    if math.isnan(d["diff"]):
        return "n/a"
    ci = " (no interval)" if math.isnan(d["low"]) else f" [{d['low']:+.3f}, {d['high']:+.3f}]"
    return f"{d['diff']:+.3f}{ci}"


def _fp(fp: dict | None) -> str:
    return "n/a" if fp is None else f"{fp['mean']:.1f} of {fp['of']}"


def _seconds(s: dict | None) -> str:
    return "n/a" if s is None else f"{s['mean']:.0f} (n={s['n']})"


def format_table(entries: list[dict]) -> str:
    lines = ["| row | domain | pooled, old | pooled, new | new − old [95 % Welch] | fluid B-scans, old "
             "| fluid B-scans, new | new − old [95 % Welch] | false-positive B-scans, old / new "
             "| CPU training s, old / new |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        name = e["row"] if e["row"] == e["old_row"] else f"{e['row']} (old: {e['old_row']})"
        a, b = e["new"], e["old"]
        lines.append(f"| {name} | {e['domain']} | {fmt_summary(b['pooled'])} | {fmt_summary(a['pooled'])} "
                     f"| {_delta(e['pooled'])} | {fmt_summary(b['fluid_bscans'])} | {fmt_summary(a['fluid_bscans'])} "
                     f"| {_delta(e['fluid_bscans'])} | {_fp(b['false_positive'])} / {_fp(a['false_positive'])} "
                     f"| {_seconds(b['cpu_train_s'])} / {_seconds(a['cpu_train_s'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--old", type=Path, required=True, help="cells folder of the grid at the earlier recipe")
    ap.add_argument("--new", type=Path, required=True, help="cells folder of the grid at the new recipe")
    ap.add_argument("--map", nargs="*", default=[], metavar="NEW=OLD",
                    help="rows named differently in the two grids (e.g. segclr_uda=segclr_uda_ch_a)")
    ap.add_argument("--methods", nargs="*", help="new-grid rows to compare (default: every row both grids have)")
    ap.add_argument("--target", default="cirrus_like", help="the grids' target device (default: cirrus_like)")
    ap.add_argument("--domains", nargs="*", default=["spectralis", "cirrus_like", "topcon_like"])
    ap.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)
    if any("=" not in item or not all(item.split("=", 1)) for item in args.map):
        ap.error("--map takes NEW=OLD pairs")
    renames = dict(item.split("=", 1) for item in args.map)
    try:
        new, old = load_grid(args.new, args.target), load_grid(args.old, args.target)
        unknown = [f"{n}={o}" for n, o in renames.items() if n not in new or o not in old]
        if unknown:
            raise DeltaError(f"--map {' '.join(unknown)}: no such row in the new or the old grid")
        names = args.methods or [m for m in new if renames.get(m, m) in old]
        pairs = [(m, renames.get(m, m)) for m in names]
        entries = compare(new, old, pairs, args.domains)
    except DeltaError as exc:
        print(f"recipe_delta: {exc}", file=sys.stderr)
        return 2
    records = [r for n, o in pairs for r in new[n] + old[o]]
    command = shlex.join(["python", "benchmarks/recipe_delta.py", *(argv if argv is not None else sys.argv[1:])])
    text = "\n\n".join([
        f"# What the recipe changed: {args.new} against {args.old}",
        "Unpaired: each side's seeds are independent samples (mean ± standard deviation over seeds, n seeds); "
        "\"fluid B-scans\" is the mean Dice over the scored B-scans whose reference has fluid; the interval is a "
        "Welch t interval (none with one seed a side or no spread). A report of what changed, not a test of it. "
        f"Regenerate with `{command}`.",
        format_table(entries),
        f"Machines (compared rows only): {describe_machines(records)}.",
    ]) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out.with_suffix(".json"), json.dumps(entries, indent=1))
        atomic_write_text(args.out.with_suffix(".md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
