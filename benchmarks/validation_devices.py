"""Score a validation search's models on the validation patients rendered as the simulated devices.

A recipe search scores on the Spectralis validation patients (``data.val_patients``). A lever that
changes what the network is made robust to (the appearance augmentation) must also not trade away what
the library is for, so this scores the same trained models on the same validation patients rendered by
the device simulator (each cell's simulation seed and geometry, its shipped post-processing), and
compares every row with ``--baseline`` seed by seed. The test patients (9-10) are never read.

For every cell record in ``--cells`` whose method matches ``--methods`` and whose model is still in
``--runs`` (as ``segclr experiment`` leaves it), it prints pooled Dice and Dice per B-scan per device,
then each row's paired differences against the baseline and the guard of the quality search's eighth
round: mean paired difference in pooled Dice >= ``--tolerance`` (default -0.010) on every device.

    python benchmarks/validation_devices.py --cells docs/results/quality_search2/cells \\
        --runs runs/quality_search2/runs --methods q2_fluid_crop_08 q11_light_appearance \\
        --baseline q2_fluid_crop_08 --out docs/results/quality_search2/validation_devices

Exit status 2 when a model is missing or nothing matched; 0 otherwise (the verdict is printed, not
signalled).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from fnmatch import fnmatch
from pathlib import Path

from segclr.experiment.runner import bank_for, evaluate_validation, stored_config, trained_model
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text

DEVICES = ("cirrus_like", "topcon_like")


def cell_model(rec: dict, runs: list[Path]) -> Path:
    """The trained model of one cell record under ``runs`` (as ``segclr experiment`` leaves it)."""
    name = f"{rec['method']}/{rec['target_device']}/seed{rec['seed']}"
    model = trained_model(rec, runs)
    if model is None:
        raise FileNotFoundError(f"{name}: no model.safetensors under {' '.join(map(str, runs))}")
    if not stored_config(rec["config"]).data.val_patients:
        raise ValueError(f"{name}: its config holds no data.val_patients (not a validation search)")
    return model


def score_devices(predictor: Predictor, cfg, devices: list[str], banks: dict) -> dict[str, dict]:
    """device -> {pooled, per_bscan, n} of ``predictor`` on ``cfg``'s validation patients rendered as ``device``."""
    summaries = evaluate_validation(predictor, bank_for(banks, cfg), cfg, domains=list(devices))
    out = {}
    for device, summary in summaries.items():
        fluid = next(m for m in summary["mean"].values() if m["name"] != "background")
        out[device] = {"pooled": fluid["pooled_Dice"], "per_bscan": fluid["Dice"], "n": len(summary["metric_per_case"])}
    return out


def score_cell(rec: dict, runs: list[Path], devices: list[str], banks: dict) -> dict[str, dict]:
    """device -> {pooled, per_bscan, n} of one cell's model on its validation patients rendered as ``device``."""
    return score_devices(Predictor(cell_model(rec, runs)), stored_config(rec["config"]), devices, banks)


def paired(scores: dict, method: str, baseline: str, device: str, key: str) -> list[float]:
    """Per-seed differences method - baseline on the seeds both have."""
    seeds = sorted(set(scores.get(method, {})) & set(scores.get(baseline, {})))
    return [scores[method][s][device][key] - scores[baseline][s][device][key] for s in seeds]


def report(scores: dict, baseline: str, devices: list[str], tolerance: float) -> tuple[str, dict]:
    lines = ["| row | seed | " + " | ".join(f"{d} pooled | {d} per B-scan" for d in devices) + " |",
             "|---|---|" + "---|---|" * len(devices)]
    for method in sorted(scores):
        for seed in sorted(scores[method]):
            cells = " | ".join(f"{scores[method][seed][d]['pooled']:.3f} | {scores[method][seed][d]['per_bscan']:.3f}"
                               for d in devices)
            lines.append(f"| {method} | {seed} | {cells} |")
    verdicts: dict = {}
    lines += ["", f"Paired differences against {baseline} (per seed), and the guard: mean pooled difference "
              f">= {tolerance:+.3f} on every device.", ""]
    for method in sorted(m for m in scores if m != baseline):
        verdicts[method] = {}
        for d in devices:
            dp, db = paired(scores, method, baseline, d, "pooled"), paired(scores, method, baseline, d, "per_bscan")
            if not dp:
                continue
            mean = statistics.fmean(dp)
            verdicts[method][d] = {"pooled": dp, "per_bscan": db, "mean_pooled": mean, "guard": mean >= tolerance}
            lines.append(f"- {method} on {d}: pooled {', '.join(f'{x:+.3f}' for x in dp)} (mean {mean:+.3f}), "
                         f"per B-scan {', '.join(f'{x:+.3f}' for x in db)} (mean {statistics.fmean(db):+.3f}): "
                         f"guard {'holds' if mean >= tolerance else 'FAILS'}")
    return "\n".join(lines) + "\n", verdicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", required=True, type=Path, help="folder of the search's committed cell records")
    ap.add_argument("--runs", required=True, type=Path, nargs="+", help="the search's runs folder(s) (--out/runs)")
    ap.add_argument("--methods", nargs="+", required=True, help="rows to score (shell patterns), the baseline included")
    ap.add_argument("--baseline", required=True, help="the row every other is paired with")
    ap.add_argument("--devices", nargs="+", default=list(DEVICES), help="simulated devices to render the patients as")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds (default: every recorded one)")
    ap.add_argument("--tolerance", type=float, default=-0.010, help="the guard's bound on the mean pooled difference")
    ap.add_argument("--out", type=Path, default=None, help="folder for validation_devices.{md,json}")
    args = ap.parse_args(argv)
    records = [json.loads(p.read_text()) for p in sorted(args.cells.glob("*.json"))]
    records = [r for r in records if any(fnmatch(r["method"], p) for p in args.methods)
               and (args.seeds is None or r["seed"] in args.seeds)]
    if not any(r["method"] == args.baseline for r in records):
        print(f"error: no cell of the baseline {args.baseline!r} in {args.cells} matches --methods/--seeds",
              file=sys.stderr)
        return 2
    banks: dict = {}
    scores: dict = {}
    for rec in records:
        try:
            result = score_cell(rec, args.runs, args.devices, banks)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        scores.setdefault(rec["method"], {})[rec["seed"]] = result
        print(f"scored {rec['method']} seed {rec['seed']}: " + ", ".join(
            f"{d} {v['pooled']:.3f} / {v['per_bscan']:.3f}" for d, v in result.items()), flush=True)
    text, verdicts = report(scores, args.baseline, args.devices, args.tolerance)
    print("\n" + text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        head = ("# Validation patients rendered as the simulated devices\n\nPooled Dice and Dice per B-scan of "
                "the fluid class, shipped post-processing. Regenerate:\n\n    python "
                + " ".join(["benchmarks/validation_devices.py", *(argv if argv is not None else sys.argv[1:])])
                + "\n\n")
        atomic_write_text(args.out / "validation_devices.md", head + text)
        atomic_write_text(args.out / "validation_devices.json",
                          json.dumps({"baseline": args.baseline, "devices": args.devices, "tolerance": args.tolerance,
                                      "scores": {m: {str(s): v for s, v in by.items()} for m, by in scores.items()},
                                      "verdicts": verdicts}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
