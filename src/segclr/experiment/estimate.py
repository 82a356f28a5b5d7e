"""A time estimate for an experiment grid (``segclr experiment --dry-run``).

Seconds per training step differ by 2x and more between two machines of one size (an AVX-512/AMX
Xeon against an AVX2 EPYC), so the estimate prefers **this machine's own measurements**: the
committed cells of every study beside the grid's cells folder (``docs/results/*/cells``) that ran
on the same CPU model, CPU capability, torch thread count and device. For each objective mode the
median seconds per step over those cells is used (the median, because a cell trained while the
machine was busy reads slow). Modes this machine has not yet run are scaled from the fallback
table below by the ratio of the measured to the fallback supervised step.

Fallback per-step costs come from the demo's measurement on 2 idle cores of an AVX-512/AMX x86_64
CPU at the reference size (batch 8, 128-px crops, base width 8: the half-resolution geometry the
demo and the studies use; supervised 109 s and SegCLR UDA 244 s for 800 steps); the other
modes are placed between the two by the work of their step (one or two extra forward passes):
guesses, not measurements. Each cell also pays a start-up, shift-statistics and scoring overhead.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

from segclr.experiment.cells import machine_description, read_cell

MEASURED = {"supervised": 109 / 800, "segclr_uda": 244 / 800}  # seconds per step, 2 idle AMX cores
SECONDS_PER_STEP = {
    **MEASURED,
    "upper_bound": MEASURED["supervised"],
    "finetune": MEASURED["supervised"],
    "adabn": MEASURED["supervised"],
    "dann": 0.18, "entropy_min": 0.22, "segclr_dg": 0.22, "ssl_pretrain": 0.20, "multi_domain": 0.33,
}
CELL_OVERHEAD_S = 15.0
REFERENCE_BATCH, REFERENCE_CROP, REFERENCE_WIDTH = 8, 128, 8
SAME_MACHINE_KEYS = ("cpu", "cpu_capability", "torch_threads", "device")


def _scale(config: dict) -> float:
    """Work of one step relative to the reference batch, crop and width (from a config dict)."""
    data, model = config.get("data") or {}, config.get("model") or {}
    return ((data.get("batch_size", REFERENCE_BATCH) / REFERENCE_BATCH)
            * (data.get("crop_size", REFERENCE_CROP) / REFERENCE_CROP) ** 2
            * (model.get("base_channels", REFERENCE_WIDTH) / REFERENCE_WIDTH) ** 2)


def measured_rates(cells_dirs: Iterable[Path], machine: dict) -> tuple[dict[str, float], int]:
    """Median reference seconds per step for each mode, from committed cells that ran on ``machine``
    (matched on ``SAME_MACHINE_KEYS``), and how many cells that is. Cells with a pretraining stage
    are left out (their time covers two fits); unreadable files are skipped."""
    per_mode: dict[str, list[float]] = {}
    for cells_dir in cells_dirs:
        for path in sorted(Path(cells_dir).glob("*.json")):
            record = read_cell(path)
            if record is None:
                continue
            try:
                ran_on = record.get("machine") or {}
                if record.get("pretrain") or any(ran_on.get(k) != machine.get(k) for k in SAME_MACHINE_KEYS):
                    continue
                config = record["config"]
                steps = int(config["trainer"]["max_steps"])
                seconds = float(record["train_seconds"]) / (steps * _scale(config))
                per_mode.setdefault(config["objective"]["mode"], []).append(seconds)
            except (ValueError, KeyError, TypeError):
                continue
    return ({mode: statistics.median(v) for mode, v in per_mode.items()},
            sum(len(v) for v in per_mode.values()))


def rates_for(measured: dict[str, float] | None) -> dict[str, float]:
    """The per-mode table to use: measured where known, else the fallback scaled to this machine."""
    measured = measured or {}
    ratio = measured["supervised"] / SECONDS_PER_STEP["supervised"] if "supervised" in measured else 1.0
    table = {mode: s * ratio for mode, s in SECONDS_PER_STEP.items()}
    table.update(measured)
    return table


def run_seconds(cfg, rates: dict[str, float] | None = None) -> float:
    """Estimated seconds for one ``fit`` of ``cfg`` (a RunConfig) on 2 idle CPU cores."""
    rates = rates or SECONDS_PER_STEP
    per_step = rates.get(cfg.objective.mode, rates.get("segclr_uda", MEASURED["segclr_uda"]))
    return cfg.trainer.max_steps * per_step * _scale(cfg.to_dict()) + CELL_OVERHEAD_S


def study_cells_dirs(cells_dir: Path, extra_root: Path | None = Path("docs/results")) -> list[Path]:
    """Every committed study's cells folder beside ``cells_dir`` and under ``extra_root``
    (``docs/results/*/cells`` of the checkout the command runs in), so a grid whose cells go to a
    scratch folder is still estimated from the studies committed here."""
    roots = {Path(cells_dir).resolve().parent.parent}
    if extra_root is not None and Path(extra_root).is_dir():
        roots.add(Path(extra_root).resolve())
    return sorted({p for root in roots for p in root.glob("*/cells") if p.is_dir()})


def format_estimate(cells: Iterable, done: Iterable[bool], cells_dir: Path | None = None,
                    machine: dict | None = None) -> str:
    """``"45 cells: 22 done, 23 to train (...steps); about 1 h 40 min on this machine (...)"``.

    With ``cells_dir`` the per-step costs come from committed cells measured on ``machine``
    (default: this one) where there are any."""
    cells, done = list(cells), list(done)
    todo = [c for c, d in zip(cells, done) if not d]
    measured, n = {}, 0
    if cells_dir is not None:
        if machine is None:
            machine = machine_description()
        measured, n = measured_rates(study_cells_dirs(cells_dir), machine)
    rates = rates_for(measured)
    steps = sum(c.config.trainer.max_steps + (c.pretrain.trainer.max_steps if c.pretrain else 0) for c in todo)
    seconds = sum(run_seconds(c.config, rates) + (run_seconds(c.pretrain, rates) if c.pretrain else 0)
                  for c in todo)
    if n:
        basis = (f"from {n} committed cells measured on this machine ({machine.get('cpu')}, "
                 f"{machine.get('cpu_capability')}; modes measured: {', '.join(sorted(measured))}; "
                 "the others scaled from them)")
    else:
        basis = ("rough: no committed cell was measured on this machine, so the per-step costs are the demo's "
                 "on an AVX-512/AMX CPU; an AVX2 CPU is about 1.6x slower, a GPU much faster")
    return (f"{len(cells)} cells: {len(cells) - len(todo)} done, {len(todo)} to train ({steps:,} steps); "
            f"about {_hours(seconds)} on 2 idle CPU cores ({basis})")


def _hours(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


__all__ = ["format_estimate", "measured_rates", "rates_for", "run_seconds", "study_cells_dirs"]
