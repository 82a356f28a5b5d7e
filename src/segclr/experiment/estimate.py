"""A rough time estimate for an experiment grid (``segclr experiment --dry-run``).

Per-step costs come from the demo's measurement on 2 idle x86_64 CPU cores at the default
model size (README, "Demo result": supervised 109 s and SegCLR UDA 244 s for 800 steps). The
other modes are placed between the two by the work of their step (one or two extra forward
passes); they are guesses, not measurements. Each cell also pays about 15 s for start-up,
the shift statistics and scoring the test patients.
"""

from __future__ import annotations

from collections.abc import Iterable

MEASURED = {"supervised": 109 / 800, "segclr_uda": 244 / 800}  # seconds per step, 2 idle cores
SECONDS_PER_STEP = {
    **MEASURED,
    "upper_bound": MEASURED["supervised"],
    "finetune": MEASURED["supervised"],
    "adabn": MEASURED["supervised"],
    "dann": 0.18, "entropy_min": 0.22, "segclr_dg": 0.22, "ssl_pretrain": 0.20, "multi_domain": 0.33,
}
CELL_OVERHEAD_S = 15.0
REFERENCE_BATCH, REFERENCE_CROP = 8, 128


def run_seconds(cfg) -> float:
    """Estimated seconds for one ``fit`` of ``cfg`` (a RunConfig) on 2 idle CPU cores."""
    per_step = SECONDS_PER_STEP.get(cfg.objective.mode, MEASURED["segclr_uda"])
    scale = (cfg.data.batch_size / REFERENCE_BATCH) * (cfg.data.crop_size / REFERENCE_CROP) ** 2
    return cfg.trainer.max_steps * per_step * scale + CELL_OVERHEAD_S


def format_estimate(cells: Iterable, done: Iterable[bool]) -> str:
    """``"45 cells: 22 done, 23 to train (...steps); about 1 h 40 min on 2 idle CPU cores (rough)"``."""
    cells, done = list(cells), list(done)
    todo = [c for c, d in zip(cells, done) if not d]
    steps = sum(c.config.trainer.max_steps + (c.pretrain.trainer.max_steps if c.pretrain else 0) for c in todo)
    seconds = sum(run_seconds(c.config) + (run_seconds(c.pretrain) if c.pretrain else 0) for c in todo)
    return (f"{len(cells)} cells: {len(cells) - len(todo)} done, {len(todo)} to train ({steps:,} steps); "
            f"about {_hours(seconds)} on 2 idle CPU cores (rough: from the demo's measured seconds per step; "
            f"a GPU is much faster)")


def _hours(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


__all__ = ["format_estimate", "run_seconds"]
