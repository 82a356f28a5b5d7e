"""GEMM limit: throughput of a large square matmul, the ceiling the training rows are compared to."""

from __future__ import annotations

import time

import torch

from segclr.bench.common import sync


def gemm_gflops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> list[float]:
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    a @ b  # warm-up (library init, clocks)
    sync(device)
    out = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        out.append(2.0 * n**3 / (time.perf_counter() - t) / 1e9)
    return out
