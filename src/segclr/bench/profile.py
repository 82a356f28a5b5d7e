"""torch.profiler table of a training step: top ops, op families, convolutions by input size."""

from __future__ import annotations

import math
from typing import Callable

import torch

from segclr.bench.common import sync, to_device


def profile_step(module, batches, device: torch.device, steps: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.to(device).train()

    def step(i):
        out = module.objective.step(module.net, to_device(batches[i % len(batches)], device), module.augment)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    step(0)
    sync(device)
    with profile(activities=acts, record_shapes=True, with_flops=True) as prof:
        for i in range(steps):
            step(i)
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = list(prof.key_averages())
    total = sum(getattr(e, key) for e in events)
    events.sort(key=lambda e: -getattr(e, key))
    top = [
        {
            "op": e.key,
            "calls_per_step": e.count / steps,
            "self_ms_per_step": getattr(e, key) / 1e3 / steps,
            "self_pct": 100.0 * getattr(e, key) / total if total else float("nan"),
        }
        for e in events[:10]
    ]

    def ms(pred: Callable[[str], bool]) -> float:
        return sum(getattr(e, key) for e in events if pred(e.key)) / 1e3 / steps

    groups = {name: ms(pred) for name, pred in OP_GROUPS.items()}
    groups["other"] = total / 1e3 / steps - sum(groups.values())

    # Convolutions by the spatial size of their input: forward FLOPs (profiler estimate) and time, backward time.
    tkey = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    by_res: dict[str, dict[str, float]] = {}
    for e in prof.key_averages(group_by_input_shape=True):
        shapes = e.input_shapes or []
        if e.key in ("aten::conv2d", "aten::conv_transpose2d") and shapes and len(shapes[0]) == 4:
            d = by_res.setdefault(f"{shapes[0][-2]}x{shapes[0][-1]}", {"fwd_gflop": 0.0, "fwd_ms": 0.0, "bwd_ms": 0.0})
            d["fwd_gflop"] += e.flops / 1e9 / steps
            d["fwd_ms"] += getattr(e, tkey) / 1e3 / steps
        elif e.key == "aten::convolution_backward" and len(shapes) > 1 and len(shapes[1]) == 4:
            d = by_res.setdefault(f"{shapes[1][-2]}x{shapes[1][-1]}", {"fwd_gflop": 0.0, "fwd_ms": 0.0, "bwd_ms": 0.0})
            d["bwd_ms"] += getattr(e, tkey) / 1e3 / steps
    return {
        "steps": steps,
        "sort_key": key,
        "total_self_ms_per_step": total / 1e3 / steps,
        "top10": top,
        "table": prof.key_averages().table(sort_by=key, row_limit=10),
        "groups_ms_per_step": groups,
        "conv_by_input_size": dict(sorted(by_res.items(), key=lambda kv: -math.prod(map(int, kv[0].split("x"))))),
    }


# Op families of the profile (self time), matched on the aten op name.
OP_GROUPS: dict[str, Callable[[str], bool]] = {
    "convolution forward": lambda k: "conv" in k and "backward" not in k,
    "convolution backward": lambda k: "conv" in k and "backward" in k,
    "batch norm (fwd+bwd)": lambda k: "batch_norm" in k,
    "max pool (fwd+bwd)": lambda k: "max_pool" in k,
    "ReLU (fwd+bwd)": lambda k: "clamp_min" in k or "relu" in k or "threshold" in k,
    "augmentation sampling (gamma, normal, grid_sample)": lambda k: any(
        t in k for t in ("_standard_gamma", "normal_", "grid_sampler")),
}
