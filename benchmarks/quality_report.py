"""The quality issue's numbers from committed study cells: targets on the test patients, time to accuracy.

Reads the cell records of the final grid (``--cells``, scored on test patients 9-10 of the source
domain) and, for time to accuracy, the validation runs' curves (``--search-curves``: the
``val_curve.csv`` of each run, copied next to its cells as ``val_curves/<method>__<target>__seed<k>.csv``)
with their cell records (``--search-cells``, paired in order: the training seconds and the split). Prints
and writes ``QUALITY.md`` to ``--out``. Nothing is chosen here: the recipe was fixed on validation.

A row whose post-processing was set after its cells ran (the full-resolution recipe's 80-px minimum)
comes from ``benchmarks/rescore_cells.py --json`` files (``--rescored``): each adds the rows
``<method> at <N> px``, with the training time of the method's cells.

    python benchmarks/quality_report.py --cells docs/results/quality_cpu/cells \
        --rescored docs/results/quality_cpu/full_res_80px.json \
        --search-cells docs/results/quality_search/cells docs/results/recipe_levers/cells \
        --search-curves docs/results/quality_search/val_curves docs/results/recipe_levers/val_curves \
        --out docs/results/quality_cpu
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from segclr.evaluation.metrics import bscan_counts
from segclr.experiment.cells import cell_path
from segclr.io.atomic import atomic_write_text

DEFAULT_CELLS = Path("docs/results/quality_cpu/cells")
SEARCHES = ("quality_search", "recipe_levers")  # validation runs with committed curves
DEFAULT_RESCORED = Path("docs/results/quality_cpu/full_res_80px.json")
TARGETS = [  # (key, label, target, higher is better)
    ("pooled", "pooled source Dice", 0.75, True),
    ("per_bscan", "Dice per B-scan (nnU-Net rule)", 0.60, True),
    ("pooled_std", "seed-to-seed std of pooled Dice", 0.02, False),
    ("fluid_bscans", "Dice on B-scans with fluid", 0.60, True),
    ("false_pos", "false-positive B-scans (of the empty ones)", 1.0, False),
]


def seed_metrics(cell: dict, domain: str) -> dict:
    cases = [c for c in cell["cases"] if c["domain"] == domain and c["class"] == "fluid"]
    row = next(r for r in cell["rows"] if r["domain"] == domain and r["class"] == "fluid")
    # cell records spell the per-case columns in lower case, as text (study CSV rows)
    counts = bscan_counts([{"Dice": float(c["dice"]), "n_ref": int(c["n_ref"]), "n_pred": int(c["n_pred"])}
                           for c in cases])
    return {"pooled": float(row["dice_pooled"]), "per_bscan": float(row["dice_mean"]),
            "fluid_bscans": counts["dice_fluid_bscans"], "false_pos": counts["false_positive_bscans"],
            "empty": counts["empty_bscans"], "area_ratio": counts["area_ratio"],
            "train_seconds": float(cell["train_seconds"]), "steps": int(cell["config"]["trainer"]["max_steps"])}


def _ms(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _area(values: list[float | None]) -> str:
    """Mean and range of the per-seed area ratios; 'not recorded' for re-scored rows written before the column
    existed (None), 'n/a' when a seed's references hold no fluid (NaN)."""
    if any(v is None for v in values):
        return "not recorded"
    if any(v != v for v in values):
        return "n/a"
    return (f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})" if len(values) > 1
            else f"{values[0]:.2f}")


def time_to(curve: list[dict], seconds_per_step: float, threshold: float) -> float | None:
    for row in curve:
        if float(row["dice_pooled"]) >= threshold:
            return int(row["step"]) * seconds_per_step / 60
    return None


def time_to_accuracy(cells_dir: Path, curves_dir: Path) -> list[str]:
    """A QUALITY.md section: minutes until each search run's validation curve reaches 0.65 and 0.72."""
    rows = []
    for path in sorted(curves_dir.glob("*.csv")):
        method, target, seed_name = path.stem.split("__")
        seed = int(seed_name.removeprefix("seed"))
        cell = cell_path(cells_dir, method, target, seed)
        if cell.is_file():
            rows.append((path, method, seed, json.loads(cell.read_text())))
    if not rows:
        return []
    cfg = rows[0][3]["config"]
    patients = ", ".join(str(p) for p in cfg["data"].get("val_patients", [])) or "none"
    every = cfg["trainer"].get("val_every_n_steps", 0)
    lines = ["", f"## Time to accuracy (validation split, `{curves_dir}`)", "",
             f"Minutes of training until the validation pooled Dice (held-out Spectralis patients {patients}, "
             f"{cfg['data'].get('input_height', '?')} working rows) first reaches 0.65 and 0.72, read off each "
             f"run's `val_curve.csv` (scored every {every} steps) times the run's measured seconds per step (its "
             "cell's training seconds / steps, which include the validation passes; runs on a shared machine "
             "read high, so these are upper bounds). Host: the cell's `machine` record.", "",
             "| run | host | seconds per step | to 0.65 | to 0.72 | final validation pooled Dice |",
             "|---|---|---|---|---|---|"]
    fmt = lambda m: "not reached" if m is None else f"{m:.1f} min"  # noqa: E731
    for path, method, seed, rec in rows:
        sps = float(rec["train_seconds"]) / int(rec["config"]["trainer"]["max_steps"])
        curve = list(csv.DictReader(path.open()))
        machine = rec.get("machine") if isinstance(rec.get("machine"), dict) else {}
        host = machine.get("cpu_capability") or "not recorded"
        lines.append(f"| {method} seed {seed} | {host} | {sps:.2f} | {fmt(time_to(curve, sps, 0.65))} | "
                     f"{fmt(time_to(curve, sps, 0.72))} | {float(curve[-1]['dice_pooled']):.3f} |")
    return lines


def rescored_metrics(rescored: dict, cells: list[dict], domain: str) -> dict[str, list[dict]]:
    """Rows of a ``rescore_cells.py --json`` file as ``{"<method> at <N> px": [per-seed metrics]}``."""
    if rescored.get("on") != "test":
        raise SystemExit(f"a --rescored file scored on {rescored.get('on')!r}: this report is of the test patients "
                         "(rescore_cells.py --on test)")
    timing = {(c["method"], c["seed"]): c for c in cells}
    out: dict[str, list[dict]] = {}
    for row in rescored["rows"]:
        if row["domain"] != domain or row["class"] != "fluid":
            continue
        cell = timing.get((row["method"], row["seed"]))
        if cell is None:
            raise SystemExit(f"rescored row {row['method']} seed {row['seed']}: no cell record in --cells")
        out.setdefault(f"{row['method']} at {rescored['min_component_px']} px", []).append({
            "seed": row["seed"], "pooled": float(row["pooled_Dice"]), "per_bscan": float(row["Dice"]),
            "fluid_bscans": float(row["dice_fluid_bscans"]), "false_pos": int(row["false_positive_bscans"]),
            "empty": int(row["empty_bscans"]),
            "area_ratio": float(row["area_ratio"]) if "area_ratio" in row else None,
            "train_seconds": float(cell["train_seconds"]),
            "steps": int(cell["config"]["trainer"]["max_steps"])})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=Path, default=DEFAULT_CELLS)
    ap.add_argument("--search-cells", type=Path, nargs="+", default=[Path(f"docs/results/{g}/cells") for g in SEARCHES],
                    help="cell folders of validation runs, paired in order with --search-curves")
    ap.add_argument("--search-curves", type=Path, nargs="+",
                    default=[Path(f"docs/results/{g}/val_curves") for g in SEARCHES],
                    help="folders of val_curve.csv copies named <method>__<target>__seed<k>.csv")
    ap.add_argument("--domain", default="spectralis")
    ap.add_argument("--rescored", type=Path, nargs="*", default=None,
                    help="rescore_cells.py --json files whose rows are added as '<method> at <N> px' (default: "
                         f"{DEFAULT_RESCORED} with the default --cells, none otherwise)")
    ap.add_argument("--recipe", default="recipe_full_res_component",
                    help="the row the targets are checked on (today's default recipe: full resolution, 80-px "
                         "minimum component, component-uniform fluid crops since docs/quality.md 1l)")
    ap.add_argument("--out", type=Path, default=Path("docs/results/quality_cpu"))
    args = ap.parse_args(argv)
    cells = [json.loads(p.read_text()) for p in sorted(args.cells.glob("*.json"))]
    if not cells:
        raise SystemExit(f"{args.cells}: no cell records")
    by: dict[str, list[dict]] = {}
    for c in cells:
        by.setdefault(c["method"], []).append({"seed": c["seed"], **seed_metrics(c, args.domain)})
    if args.rescored is None:
        args.rescored = [DEFAULT_RESCORED] if args.cells == DEFAULT_CELLS else []
    for path in args.rescored:
        if not path.is_file():
            raise SystemExit(f"{path}: --rescored file not found")
        by.update(rescored_metrics(json.loads(path.read_text()), cells, args.domain))
    lines = [f"# Quality on the test patients (9-10), source domain `{args.domain}`", "",
             "Generated by `python benchmarks/quality_report.py` from the committed cells in "
             f"`{args.cells}`; the recipe was chosen on the validation split before these were run.", "",
             "| row | seeds | pooled Dice | Dice per B-scan | Dice on B-scans with fluid | false-positive B-scans | "
             "fluid area, predicted / reference | training steps | training minutes per model |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, seeds in by.items():
        seeds.sort(key=lambda s: s["seed"])
        col = lambda k: [s[k] for s in seeds]  # noqa: E731
        lines.append(f"| {method} | {', '.join(str(s['seed']) for s in seeds)} | {_ms(col('pooled'))} | "
                     f"{_ms(col('per_bscan'))} | {_ms(col('fluid_bscans'))} | "
                     f"{statistics.mean(col('false_pos')):.1f} of {seeds[0]['empty']} | {_area(col('area_ratio'))} | "
                     f"{seeds[0]['steps']} | "
                     f"{statistics.mean(col('train_seconds')) / 60:.1f} |")
    if args.recipe not in by:
        raise SystemExit(f"--recipe {args.recipe!r}: no such row (rows: {', '.join(by)})")
    seeds = by[args.recipe]
    vals = {"pooled": statistics.mean(s["pooled"] for s in seeds),
            "per_bscan": statistics.mean(s["per_bscan"] for s in seeds),
            "pooled_std": statistics.stdev(s["pooled"] for s in seeds) if len(seeds) > 1 else float("nan"),
            "fluid_bscans": statistics.mean(s["fluid_bscans"] for s in seeds),
            "false_pos": statistics.mean(s["false_pos"] for s in seeds)}
    lines += ["", f"## Targets (row `{args.recipe}`, {len(seeds)} seeds)", "",
              "| target | goal | measured | verdict | by how much |", "|---|---|---|---|---|"]
    for key, label, goal, higher in TARGETS:
        v = vals[key]
        met = v >= goal if higher else v <= goal
        lines.append(f"| {label} | {'>=' if higher else '<='} {goal:g} | {v:.3f} | "
                     f"{'met' if met else '**missed**'} | {v - goal:+.3f} |")
    if len(args.search_cells) != len(args.search_curves):
        raise SystemExit("--search-cells and --search-curves must name the same number of folders (paired in order)")
    for cells_dir, curves_dir in zip(args.search_cells, args.search_curves):
        lines += time_to_accuracy(cells_dir, curves_dir)
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "QUALITY.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
