"""Constants of the benchmark and small helpers: clocks, periods, memory, quiet Lightning, the demo config."""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch

MODES = ("supervised", "segclr_uda")


class Variant(NamedTuple):
    bf16: bool             # bf16 autocast
    channels_last: bool    # channels_last model weights
    stem: str = "conv"     # the UNet's stem (model.stem): s2d drops the full-resolution stage
    compile: bool = False  # torch.compile on each top-level UNet block (training only; see compile_blocks)


VARIANTS = {
    "fp32": Variant(False, False),
    "bf16": Variant(True, False),
    "fp32-cl": Variant(False, True),
    "bf16-cl": Variant(True, True),
    "fp32-s2d": Variant(False, False, "s2d"),
    "bf16-s2d": Variant(True, False, "s2d"),
    "fp32-s2dr": Variant(False, False, "s2d_refine"),
    "fp32-c": Variant(False, False, "conv", True),
    "bf16-c": Variant(True, False, "conv", True),
}
TARGETS = {
    "overhead_ratio_min": 0.95,
    "gemm_fraction_min": 0.50,
    "data_multiple_min": 5.0,
    "segclr_over_sup_max": 2.5,
    "volume49_s_max": 2.0,
    "train_peak_gb_max": 4.0,
}


def compile_blocks(net: torch.nn.Module) -> list[str]:
    """``torch.compile`` each top-level child of ``net`` in place; returns their names.

    Per block rather than the whole UNet: the objectives call ``net.encode``/``decode`` as well as
    ``net(x)``, and a compiled ``forward`` alone would leave those paths eager. Every block instance
    gets its own guards, so dynamo's per-code recompile limit is raised to cover them all.
    """
    import torch._dynamo

    children = list(net.named_children())
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16 * len(children))
    limit = getattr(torch._dynamo.config, "accumulated_cache_size_limit", None)
    if limit is not None:
        torch._dynamo.config.accumulated_cache_size_limit = max(limit, 64 * len(children))
    for _, child in children:
        child.compile()
    return [name for name, _ in children]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds. On a shared machine the CPU time of a 1-thread run is the steadier one."""
    return time.perf_counter(), time.process_time()


def periods(stamps: list[tuple[float, float]], first: int) -> dict[str, list[float]]:
    """Wall and CPU durations between consecutive stamps, from stamp ``first`` on."""
    return {
        "periods": [stamps[i + 1][0] - stamps[i][0] for i in range(first, len(stamps) - 1)],
        "cpu_periods": [stamps[i + 1][1] - stamps[i][1] for i in range(first, len(stamps) - 1)],
    }


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def rss_mb() -> dict[str, float]:
    """This process's resident set size, MB: ``peak_mb`` (ru_maxrss), and on Linux ``rss_mb`` (now) and
    ``hwm_mb`` (peak since start or since the last :func:`reset_peak`)."""
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        peak_kb /= 1024  # bytes there
    out = {"peak_mb": peak_kb / 1024}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                out["hwm_mb"] = int(line.split()[1]) / 1024
    return out


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def quiet() -> None:
    import logging

    from segclr.training.trainer import _quiet_lightning

    _quiet_lightning()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning.*")


def demo_config(mode: str, device: str, max_steps: int | None = None, stem: str = "conv"):
    """The demo's RunConfig for ``mode`` (half resolution: 248 rows, 128-px crops), with the UNet's ``stem``."""
    from segclr.experiment.demo import demo_configs

    cfg = demo_configs(seed=0, steps=max_steps)[mode]
    cfg.trainer.accelerator = device
    cfg.trainer.progress_bar = False
    cfg.model.stem = stem
    return cfg


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def autocast_ctx(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
