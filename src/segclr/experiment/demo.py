"""``segclr demo``: baseline vs SegCLR UDA on real Spectralis + one simulated device.

Trains the supervised baseline and SegCLR UDA (Cch head, Pa pairs, NT-Xent) on the embedded
Duke DME source patients (plus unlabeled simulated target patients for SegCLR), scores both
on the test patients of every domain, and writes a report folder::

    OUT/results.json           method -> domain -> Dice (and pooled Dice, per class)
    OUT/results.md             the Dice tables (with the number of B-scans behind each mean),
                               settings, machine and wall time
    OUT/overlays_<domain>.png  best, median and worst test B-scan and one with an empty reference
                               (see :mod:`segclr.experiment.overlays`), errors in their own colours
    OUT/<method>/...           each method's run folder (config, checkpoints, model.safetensors,
                               model card with the demo's metrics, logs, training_curves.png)

Sized for about 11 minutes on 2 CPU cores (measured: README, "Demo result"; see ``DEMO_OVERRIDES``).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from segclr.config import RunConfig, from_dict
from segclr.data.domains import DomainBank
from segclr.evaluation.benchmark import evaluate_domains
from segclr.experiment.overlays import Case, plot_representative
from segclr.inference.export import write_model_card
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text
from segclr.training.trainer import fit

# One seed, short schedule: the demo shows the pipeline end to end, not a converged study. It works
# at half resolution (248 rows, 128-px crops, the 20-px minimum component of that grid), the geometry
# of the study's grids: the full-resolution default costs about 4x per step (docs/quality.md 1f),
# which would put `make demo` far over its 15 minutes. Its fluid crops pick a fluid pixel (`pixel`):
# the component crops that became the default (docs/quality.md 1l) were chosen at full resolution and
# are not checked at this geometry.
DEMO_OVERRIDES: dict[str, dict] = {
    "trainer": {"max_steps": 800, "checkpoint_every_n_steps": 200, "log_every_n_steps": 10},
    "data": {"batch_size": 8, "target_domains": ["cirrus_like"], "input_height": 248, "crop_size": 128,
             "fluid_crop_by": "pixel"},
    "postprocess": {"min_component_px": 20},
}
DEMO_METHODS: dict[str, dict] = {
    "supervised": {"objective": {"mode": "supervised"}},
    "segclr_uda": {"objective": {"mode": "segclr_uda"}, "model": {"head": "ch"}, "data": {"pairs": "a"}},
}


def _merge(*dicts: dict) -> dict:
    out: dict = {}
    for d in dicts:
        for section, values in d.items():
            out.setdefault(section, {}).update(values)
    return out


def demo_configs(seed: int = 0, steps: int | None = None, target: str | None = None) -> dict[str, RunConfig]:
    extra: dict = {"trainer": {"seed": seed}}
    if steps is not None:
        extra["trainer"]["max_steps"] = steps
    if target is not None:
        extra["data"] = {"target_domains": [target]}
    return {m: from_dict(_merge(DEMO_OVERRIDES, over, extra)) for m, over in DEMO_METHODS.items()}


def machine_description() -> str:
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}")


def _n_scored(summary: dict) -> int:
    """B-scans behind the per-B-scan mean (the nnU-Net rule leaves out those with both masks empty)."""
    return sum(v["n_cases"] - v["n_nan"] for v in summary["mean"].values())


def format_counted_table(results: dict[str, dict[str, tuple[float, int]]], domains: list[str]) -> str:
    """Markdown table of ``method -> domain -> (value, n)`` as ``0.303 (n=18)``."""
    lines = ["| method | " + " | ".join(domains) + " |", "|---|" + "---|" * len(domains)]
    for method, per_domain in results.items():
        cells = []
        for d in domains:
            v, n = per_domain.get(d, (float("nan"), 0))
            cells.append("n/a" if math.isnan(v) else f"{v:.3f} (n={n})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(out_dir: str | Path, seed: int = 0, steps: int | None = None, target: str | None = None,
             progress: bool | None = None) -> dict:
    """Train, score and report (see the module doc); ``progress`` bars default to on in a terminal only."""
    progress = sys.stderr.isatty() if progress is None else progress
    out = Path(out_dir)
    configs = demo_configs(seed, steps, target)
    first = next(iter(configs.values()))
    bank = DomainBank(first.data.simulation_seed, geometry=first.data.geometry)
    domains = first.data.eval_domains
    start = time.perf_counter()
    results: dict[str, dict] = {}
    predictions: dict[str, Predictor] = {}
    for method, cfg in configs.items():
        print(f"\n=== training {method} ({cfg.trainer.max_steps} steps) ===", flush=True)
        res = fit(cfg, out / method, bank=bank)
        predictor = Predictor(res.bundle)
        predictions[method] = predictor
        summaries = evaluate_domains(predictor, bank, domains, progress=progress)
        results[method] = {
            "train_seconds": round(res.seconds, 1),
            "domains": {d: {"dice": s["foreground_mean"]["Dice"], "pooled_dice": s["foreground_mean"]["pooled_Dice"],
                            "n_bscans": len(s["metric_per_case"]), "n_dice": _n_scored(s),
                            "per_class": s["mean"]} for d, s in summaries.items()},
        }
        write_model_card(res.bundle, metrics=_card_metrics(results[method]["domains"]))
    overlays = _write_overlays(out, bank, domains, predictions)
    wall = time.perf_counter() - start
    report = {
        "results": {m: {d: v["dice"] for d, v in r["domains"].items()} for m, r in results.items()},
        "overlays": overlays,
        "details": results,
        "target_domains": first.data.target_domains,
        "seed": seed,
        "steps": first.trainer.max_steps,
        "wall_seconds": round(wall, 1),
        "machine": machine_description(),
        "note": "real Spectralis source, simulated target devices (Duke DME, Chiu et al. 2015)",
    }
    atomic_write_text(out / "results.json", json.dumps(report, indent=2))
    table = format_counted_table({m: {d: (v["dice"], v["n_dice"]) for d, v in r["domains"].items()}
                                  for m, r in results.items()}, domains)
    pooled = format_counted_table({m: {d: (v["pooled_dice"], v["n_bscans"]) for d, v in r["domains"].items()}
                                   for m, r in results.items()}, domains)
    md = (
        f"# segclr demo\n\nReal Spectralis source (Duke DME patients 1-5 labeled), simulated target "
        f"{', '.join(first.data.target_domains)} (patients 6-8 unlabeled), test patients 9-10 of every domain.\n\n"
        f"Dice per B-scan (nnU-Net rule, mean over B-scans; n = B-scans in the mean: a B-scan whose reference "
        f"and prediction are both empty has no Dice, so n differs by method):\n\n{table}\n\n"
        f"pooled Dice (n = all test B-scans):\n\n{pooled}\n\n"
        f"Seed {seed}, {first.trainer.max_steps} steps per method. Wall time {wall / 60:.1f} min for training, "
        f"scoring and figures (the command's start-up and the install not included), "
        f"machine: {report['machine']}.\nOne seed: differences of a few points are within seed-to-seed noise.\n"
        "Overlays (`overlays_<domain>.png`): " + "; ".join(overlays.get(domains[0], [])) + " (best/median/worst by "
        "the methods' mean Dice over the B-scans with fluid, plus the first B-scan with an empty reference).\n"
    )
    atomic_write_text(out / "results.md", md)
    print("\n" + md, flush=True)
    return report


def _card_metrics(domains: dict) -> dict:
    """Model-card metrics from the demo's scores (results.json sits one folder above the bundle)."""
    return {"source": "../results.json (segclr demo, test patients 9-10 of each domain)",
            "per_domain": {d: {"Dice": v["dice"], "n_dice": v["n_dice"], "pooled_Dice": v["pooled_dice"],
                               "n_bscans": v["n_bscans"]} for d, v in domains.items()}}


def _write_overlays(out: Path, bank: DomainBank, domains: list[str],
                    predictors: dict[str, Predictor]) -> dict[str, list[str]]:
    from segclr.data.simulate import load_devices

    shown = {}
    for d in domains:
        vols = bank.volumes(d, "test")
        # the scale bar follows each domain's own grid (native-grid devices differ from the source)
        lateral_um = (vols[0].spacing_um or (0.0, load_devices()[0].lateral_spacing_um))[1]
        cases = [Case(f"patient {v.patient} slice {k}", img, msk,
                      {m: p(img, v.spacing_um) for m, p in predictors.items()})
                 for v in bank.volumes(d, "test") for k, (img, msk) in enumerate(zip(v.images, v.masks))]
        shown[d] = plot_representative(cases, out / f"overlays_{d}.png", title=f"{d}: test B-scans",
                                       lateral_um=lateral_um)
    return shown


__all__ = ["DEMO_METHODS", "DEMO_OVERRIDES", "demo_configs", "run_demo"]
