"""Data path: the datamodule's streams plus the augmentation calls of one training step."""

from __future__ import annotations

import torch

from segclr.bench.common import clock, periods, sync, to_device


def data_run(it, objective, augment, device: torch.device, warmup: int, n: int) -> dict:
    """One training step's worth of data: next() on the CombinedLoader + every BatchAugment call."""
    from segclr.objectives.base import augment_labeled

    starts = []
    for i in range(warmup + n + 1):
        sync(device)
        starts.append(clock())
        if i == warmup + n:
            break
        b = next(it)
        b = to_device(b[0] if isinstance(b, tuple) else b, device)
        with torch.no_grad():
            augment_labeled(augment, b["labeled"])
            for d in getattr(objective, "domains", []):
                v1, v2 = b[d]["view1"], b[d]["view2"]
                if objective.augment_pairs:
                    augment(v1)
                    augment(v2)
    return periods(starts, warmup)
