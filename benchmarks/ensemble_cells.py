"""Score ensembles of a grid row's trained models against single models of a baseline row.

nnU-Net does not ship one network: it averages the softmax of several (its cross-validation folds).
This asks whether that pays on our budget. Each ``--groups`` entry names seeds of ``--method``; their
models (as ``segclr experiment`` leaves them under ``--runs``) form one ensemble
(:class:`segclr.inference.predict.Predictor` with several bundles: probabilities averaged, then the
shared post-processing). The i-th ensemble is paired with seed ``--baseline-seeds[i]`` of
``--baseline`` (a single model), scored the same way:

* ``--on validation``: the grid's validation patients (``data.val_patients``) of the source domain, and
  the same patients rendered as ``--devices`` (the device guard of validation_devices.py);
* ``--on test``: the test patients of every ``data.eval_domains`` domain (the rows a study reports).

For every ensemble and baseline model it prints pooled Dice, Dice per B-scan, Dice on the B-scans with
fluid and false-positive B-scans per domain, the paired differences, and the members' summed training
seconds (from their cell records: the ensemble's training cost). The test patients are read only with
``--on test``.

    python benchmarks/ensemble_cells.py --cells docs/results/recipe_levers/cells \\
        --runs runs/recipe_levers/runs --method v6_recipe_248 --groups 0,1,2 3,4,5 \\
        --baseline v0_recipe --baseline-seeds 0 1 --out docs/results/recipe_levers/ensembles

Exit status 2 when a record or a model is missing, or when the ensembles and the baseline are not scored on the
same B-scans; 0 otherwise (the verdict is printed, not signalled). Everything is scored on the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if (SRC / "segclr").is_dir() and str(SRC) not in sys.path:  # a clone without `pip install -e .`
    sys.path.insert(0, str(SRC))

from segclr.evaluation.benchmark import evaluate_domains  # noqa: E402
from segclr.evaluation.metrics import bscan_counts  # noqa: E402
from segclr.experiment.runner import bank_for, evaluate_validation, stored_config, trained_model  # noqa: E402
from segclr.inference.predict import Predictor  # noqa: E402
from segclr.io.atomic import atomic_write_text  # noqa: E402

DEVICES = ("cirrus_like", "topcon_like")


def find_record(records: list[dict], method: str, seed: int) -> dict:
    rec = next((r for r in records if r["method"] == method and r["seed"] == seed), None)
    if rec is None:
        raise FileNotFoundError(f"no cell record of {method} seed {seed}")
    return rec


def model_of(rec: dict, runs: list[Path]) -> Path:
    model = trained_model(rec, runs)
    if model is None:
        raise FileNotFoundError(f"{rec['method']}/{rec['target_device']}/seed{rec['seed']}: no model.safetensors "
                                f"under {' '.join(map(str, runs))}")
    return model


def fluid_scores(summary: dict) -> dict:
    """Pooled Dice, Dice per B-scan, and the B-scan counts of the (first) fluid class of a summary."""
    key, m = next((k, m) for k, m in summary["mean"].items() if m["name"] != "background")
    counts = bscan_counts([c["metrics"][key] for c in summary["metric_per_case"]])
    return {"class": m["name"], "pooled": m["pooled_Dice"], "per_bscan": m["Dice"], **counts,
            "n": len(summary["metric_per_case"])}


def scored_on(cfg) -> tuple:
    """What a cell's scores depend on besides its model: the bank, the validation patients, the test domains."""
    d = cfg.data
    return (d.dataset, d.simulation_seed, d.geometry, tuple(sorted(d.val_patients or [])), tuple(d.eval_domains))


def member_scores(rec: dict, scores: dict[str, dict], cases: dict[str, set]) -> dict:
    """A member's committed pooled Dice and Dice per B-scan per domain, where its record holds exactly the B-scans
    the ensemble was scored on (else that domain is left out: they would not be comparable)."""
    out = {}
    for d, s in scores.items():
        names = {c["case"] for c in rec["cases"] if c["domain"] == d and c["class"] == s["class"]}
        row = next((r for r in rec["rows"] if r["domain"] == d and r["class"] == s["class"]), None)
        if row is not None and names == cases[d]:
            out[d] = {"pooled": row["dice_pooled"], "per_bscan": row["dice_mean"]}
    return out


def score(models: list[Path], cfg, on: str, devices: list[str], banks: dict) -> tuple[dict[str, dict], dict[str, set]]:
    """domain -> fluid scores of the ensemble of ``models`` (one model: a single network), and domain -> the names
    of the B-scans scored. On the CPU (cells trained on a GPU were scored there: float noise apart, the same)."""
    predictor = Predictor(models)
    bank = bank_for(banks, cfg)
    if on == "validation":
        summaries = evaluate_validation(predictor, bank, cfg, domains=[cfg.data.source_domain, *devices])
    else:
        summaries = evaluate_domains(predictor, bank, list(cfg.data.eval_domains), progress=False)
    return ({d: fluid_scores(s) for d, s in summaries.items()},
            {d: {c["reference_file"] for c in s["metric_per_case"]} for d, s in summaries.items()})


def line(name: str, scores: dict) -> str:
    return f"| {name} | " + " | ".join(
        f"{d}: {v['pooled']:.3f} / {v['per_bscan']:.3f} / {v['dice_fluid_bscans']:.3f} / "
        f"{v['false_positive_bscans']} of {v['empty_bscans']}" for d, v in scores.items()) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", required=True, type=Path, help="folder of the grid's committed cell records")
    ap.add_argument("--runs", required=True, type=Path, nargs="+", help="the grid's runs folder(s) (--out/runs)")
    ap.add_argument("--method", required=True, help="the row whose models are ensembled")
    ap.add_argument("--groups", required=True, nargs="+",
                    help="one ensemble per entry: comma-separated seeds of --method, e.g. 0,1,2 3,4,5")
    ap.add_argument("--baseline", required=True, help="the row of single models each ensemble is paired with")
    ap.add_argument("--baseline-seeds", required=True, type=int, nargs="+",
                    help="the baseline seed paired with each group, in order")
    ap.add_argument("--on", choices=["validation", "test"], default="validation")
    ap.add_argument("--devices", nargs="+", default=list(DEVICES),
                    help="with --on validation: also the validation patients rendered as these devices")
    ap.add_argument("--out", type=Path, default=None, help="folder for ensembles.{md,json}")
    args = ap.parse_args(argv)
    if len(args.groups) != len(args.baseline_seeds):
        ap.error(f"{len(args.groups)} --groups but {len(args.baseline_seeds)} --baseline-seeds: give one each")
    try:
        groups = [[int(s) for s in g.split(",")] for g in args.groups]
    except ValueError:
        ap.error(f"--groups: expected comma-separated seeds, got {' '.join(args.groups)}")
    records = [json.loads(p.read_text()) for p in sorted(args.cells.glob("*.json"))]
    banks: dict = {}
    results = []
    try:
        for seeds, base_seed in zip(groups, args.baseline_seeds):
            members = [find_record(records, args.method, s) for s in seeds]
            base = find_record(records, args.baseline, base_seed)
            where = {scored_on(stored_config(r["config"])) for r in (*members, base)}
            if len(where) > 1:
                raise ValueError(f"{args.method} seeds {seeds} and {args.baseline} seed {base_seed} are not scored on "
                                 "the same B-scans (dataset, simulation seed, geometry, validation patients or test "
                                 "domains differ): their differences would not be paired")
            ens, cases = score([model_of(r, args.runs) for r in members], stored_config(members[0]["config"]), args.on,
                               args.devices, banks)
            single, _ = score([model_of(base, args.runs)], stored_config(base["config"]), args.on, args.devices, banks)
            results.append({"seeds": seeds, "baseline_seed": base_seed, "ensemble": ens, "baseline": single,
                            "train_seconds": sum(r["train_seconds"] for r in members),
                            "baseline_train_seconds": base["train_seconds"],
                            "members": {str(r["seed"]): member_scores(r, ens, cases) for r in members}})
            print(f"scored {args.method} seeds {seeds} against {args.baseline} seed {base_seed}", flush=True)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = report(results, args)
    print("\n" + text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        cmd = " ".join(["python benchmarks/ensemble_cells.py", *(argv if argv is not None else sys.argv[1:])])
        atomic_write_text(args.out / "ensembles.md", f"# Ensembles of {args.method} against {args.baseline}\n\n"
                          f"Regenerate:\n\n    {cmd}\n\n" + text)
        atomic_write_text(args.out / "ensembles.json", json.dumps(
            {"method": args.method, "baseline": args.baseline, "on": args.on, "results": results}, indent=1))
    return 0


def report(results: list[dict], args) -> str:
    lines = ["Per domain: pooled Dice / Dice per B-scan / Dice on the B-scans with fluid / false-positive B-scans.", "",
             "| model | scores | ", "|---|---|"]
    for r in results:
        lines.append(line(f"{args.method} seeds {','.join(map(str, r['seeds']))} (ensemble, "
                          f"{r['train_seconds']:.0f} s of training)", r["ensemble"]))
        lines.append(line(f"{args.baseline} seed {r['baseline_seed']} ({r['baseline_train_seconds']:.0f} s)",
                          r["baseline"]))
    lines += ["", f"Paired differences, ensemble - {args.baseline} (one per group):", ""]
    for d in results[0]["ensemble"]:
        dp = [r["ensemble"][d]["pooled"] - r["baseline"][d]["pooled"] for r in results]
        db = [r["ensemble"][d]["per_bscan"] - r["baseline"][d]["per_bscan"] for r in results]
        lines.append(f"- {d}: pooled {', '.join(f'{x:+.3f}' for x in dp)} (mean {statistics.fmean(dp):+.3f}); "
                     f"per B-scan {', '.join(f'{x:+.3f}' for x in db)} (mean {statistics.fmean(db):+.3f})")
    src = next(iter(results[0]["ensemble"]))
    lines += ["", f"What ensembling adds over its own members on {src} (ensemble - mean of the members' records):", ""]
    for r in results:
        mem = [m[src] for m in r["members"].values() if src in m]
        if len(mem) < len(r["members"]):
            lines.append(f"- seeds {','.join(map(str, r['seeds']))}: not comparable (the members' records hold other "
                         f"B-scans of {src} than the ensemble was scored on, e.g. --on test for a validation grid)")
        elif mem:
            lines.append(f"- seeds {','.join(map(str, r['seeds']))}: pooled "
                         f"{r['ensemble'][src]['pooled'] - statistics.fmean(m['pooled'] for m in mem):+.3f}, "
                         "per B-scan "
                         f"{r['ensemble'][src]['per_bscan'] - statistics.fmean(m['per_bscan'] for m in mem):+.3f}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
