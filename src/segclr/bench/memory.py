"""Training memory: peak resident memory of a real, shortened ``fit`` of the demo's SegCLR UDA config."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from segclr.bench.common import demo_config, quiet, reset_peak, rss_mb


def worker_memtrain(args) -> dict:
    """A real ``fit`` of the demo's SegCLR UDA config (shortened): peak RSS of training."""
    quiet()
    from segclr.data.domains import DomainBank
    from segclr.training.trainer import fit

    res: dict[str, Any] = {"rss_after_import": rss_mb()}
    steps = args.mem_steps
    cfg = demo_config("segclr_uda", args.device, steps)
    cfg.trainer.checkpoint_every_n_steps = max(1, steps // 2)
    # Render the domains first (what fit's datamodule would do) to split data setup from training.
    bank = DomainBank(cfg.data.simulation_seed)
    bank.volumes(cfg.labeled_domain, "source_train")
    for d in cfg.unlabeled_domains:
        bank.volumes(d, "source_train" if d == cfg.data.source_domain else "target_train")
    res["rss_after_data"] = rss_mb()
    res["peak_reset"] = reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = fit(cfg, Path(tmp) / "run", bank=bank)
        res["fit_s"] = time.perf_counter() - t
        res["steps"] = out.steps
    res["rss_end"] = rss_mb()
    if args.device == "cuda":
        res["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return res
