"""The machine: CPU/GPU facts and how busy other processes kept it."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
from pathlib import Path
from typing import Any

import torch


def cpu_busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat (Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def others_cores(jiff0, jiff1, self0, wall: float) -> float:
    """Average number of cores other processes kept busy since (jiff0, self0); NaN off Linux."""
    if not (jiff0 and jiff1) or wall <= 0:
        return float("nan")
    busy = (jiff1[0] - jiff0[0]) / os.sysconf("SC_CLK_TCK")
    self1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    return max(0.0, busy - mine) / wall


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_details() -> dict:
    """Linux /proc/cpuinfo: cores vs. logical CPUs per package, and the SIMD/matrix flags that matter here."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu cores", "siblings") and key not in out:
                out[key] = int(value)
            elif key == "flags" and "flags" not in out:
                have = set(value.split())
                out["flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have]
    info = torch.__config__.parallel_info().splitlines()
    out["parallel_backend"] = next((x.split(":", 1)[1].strip() for x in info if "parallel backend" in x), None)
    config = torch.__config__.show().splitlines()
    out["onednn"] = next((x.strip().lstrip("- ") for x in config if "oneDNN" in x or "MKL-DNN" in x), None)
    return out


def machine_info(args) -> dict:
    import lightning

    info = {
        "device": args.device,
        "cpu": cpu_name(),
        "cpu_details": cpu_details(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": args.threads or torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")},
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info
