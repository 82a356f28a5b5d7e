"""Calibration of the domain-shift warning: false alarms on Spectralis, detections on simulated devices.

    # train a supervised and a SegCLR UDA model (demo settings, N steps each) into --work, then score
    python benchmarks/shift_auroc.py --train-steps 400 --work runs/shift_bench --out docs/shift.md
    # or score existing bundles, e.g. the demo's
    python benchmarks/shift_auroc.py --checkpoint segclr-demo/supervised/model.safetensors \
        --checkpoint segclr-demo/segclr_uda/model.safetensors --out docs/shift.md

For every model and every benchmark domain it scores the volumes of the patients that model never
trained on in that domain (Spectralis: patients 6-10 unless it trained on them; a simulated device:
6-10, or only the test patients 9-10 when the model saw the device's patients 6-8 unlabeled), one
volume per patient and simulation seed, with the bundle's stored statistics and threshold, and
reports:

* volumes flagged (what ``predict`` warns about: a volume's mean score above the threshold). On
  Spectralis this is the **false-alarm rate** (the target is none); on a simulated device the model
  did not train on, the **detection rate**;
* B-scans flagged (each B-scan's own score against the same threshold), and the AUROC of
  "this domain's B-scans score higher than held-out Spectralis B-scans".
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from segclr.data.domains import SOURCE_DOMAIN, SPLITS, DomainBank, all_domain_names
from segclr.inference.predict import Predictor
from segclr.inference.shift import auroc
from segclr.io.atomic import atomic_write_text

ALL_PATIENTS = tuple(p for ps in SPLITS.values() for p in ps)


def train_models(work: Path, steps: int, seed: int) -> list[Path]:
    """The demo's two methods (supervised, SegCLR UDA on cirrus_like), ``steps`` each; reuses finished runs."""
    from segclr.experiment.demo import demo_configs
    from segclr.training.trainer import fit

    bundles = []
    bank = DomainBank(0)
    for method, cfg in demo_configs(seed=seed, steps=steps).items():
        out = work / method
        if not (out / "model.safetensors").is_file():
            cfg.trainer.progress_bar = False
            fit(cfg, out, bank=bank)
        bundles.append(out / "model.safetensors")
    return bundles


def heldout_patients(meta: dict, domain: str) -> tuple[int, ...]:
    """Patients of ``domain`` the model never saw (the benchmark's roles: source_train 1-5, target_train 6-8)."""
    t = meta.get("training", {})
    seen = {t.get("labeled_domain"), *(t.get("unlabeled_domains") or [])}
    used = () if domain not in seen else SPLITS["source_train" if domain == SOURCE_DOMAIN else "target_train"]
    return tuple(p for p in ALL_PATIENTS if p not in used)


def score_model(bundle: Path, sim_seeds: list[int], banks: dict[int, DomainBank]) -> tuple[Predictor, dict]:
    predictor = Predictor(bundle)
    if predictor.shift_stats is None:
        raise SystemExit(f"{bundle}: bundle has no shift statistics (trained before they were stored)")
    rows = {}
    for d in all_domain_names():
        patients = heldout_patients(predictor.meta, d)
        seeds = [sim_seeds[0]] if d == SOURCE_DOMAIN else sim_seeds  # Spectralis is real: one copy
        vol_scores, scan_scores = [], []
        for s in seeds:
            for v in banks[s].domain(d):
                if v.patient in patients:
                    scores = predictor.shift_scores(np.stack(v.images), v.spacing_um)
                    scan_scores.append(scores)
                    vol_scores.append(float(np.mean(scores)))
        rows[d] = {"patients": patients, "seeds": seeds, "volumes": np.array(vol_scores),
                   "bscans": np.concatenate(scan_scores)}
    return predictor, rows


def _patients(ps: tuple[int, ...]) -> str:
    return f"{ps[0]}-{ps[-1]}" if ps == tuple(range(ps[0], ps[-1] + 1)) else ",".join(map(str, ps))


def table(bundle: Path, predictor: Predictor, rows: dict) -> list[str]:
    t = predictor.meta["training"]
    thr = predictor.shift_threshold
    cal = predictor.shift_stats.get("calibration")
    how = ("in-sample 99th percentile (old bundle)" if cal is None or float(cal[1]) == 0 else
           f"leave-one-volume-out over {int(cal[1])} training volumes ({int(cal[0])} B-scans)")
    trained = [t["labeled_domain"], *t["unlabeled_domains"]]
    src = rows[SOURCE_DOMAIN]["bscans"]
    lines = [f"**`{bundle}`**: {t['mode']}, {t['steps']} steps, seed {t['seed']}; trained on "
             f"{', '.join(dict.fromkeys(trained))}; threshold {thr:.4f} ({how}).", "",
             "| domain | held-out patients | volumes flagged | B-scans flagged | mean B-scan score "
             "| AUROC vs spectralis |",
             "|---|---|---|---|---|---|"]
    for d, r in rows.items():
        role = "false alarms" if d == SOURCE_DOMAIN else ("training device" if d in trained else "detections")
        a = "-" if d == SOURCE_DOMAIN else f"{auroc(src, r['bscans']):.3f}"
        seeds = "" if d == SOURCE_DOMAIN else f" x {len(r['seeds'])} sim. seed{'s' * (len(r['seeds']) > 1)}"
        lines.append(f"| {d} ({role}) | {_patients(r['patients'])}{seeds} | "
                     f"{int((r['volumes'] > thr).sum())}/{len(r['volumes'])} | "
                     f"{int((r['bscans'] > thr).sum())}/{len(r['bscans'])} | {np.mean(r['bscans']):.3f} | {a} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, action="append", default=[], help="bundle to score (repeatable)")
    ap.add_argument("--train-steps", type=int, default=800,
                    help="without --checkpoint: steps per model (default: the demo's 800)")
    ap.add_argument("--work", type=Path, default=Path("runs/shift_bench"), help="where trained models go")
    ap.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    ap.add_argument("--sim-seeds", type=int, nargs="+", default=[0, 1],
                    help="simulation seeds of the simulated devices' volumes (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file to write the tables to")
    args = ap.parse_args()

    start = time.perf_counter()
    bundles = args.checkpoint or train_models(args.work, args.train_steps, args.seed)
    banks = {s: DomainBank(s) for s in args.sim_seeds}
    lines = []
    for bundle in bundles:
        lines += table(bundle, *score_model(bundle, args.sim_seeds, banks))
    cmd = "python benchmarks/shift_auroc.py " + (" ".join(f"--checkpoint {b}" for b in args.checkpoint)
                                                  if args.checkpoint
                                                  else f"--train-steps {args.train_steps} --seed {args.seed}")
    lines += [f"Command: `{cmd} --sim-seeds {' '.join(map(str, args.sim_seeds))}`; "
              f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
              f"{(time.perf_counter() - start) / 60:.1f} min."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
