"""Post-fit helpers keep every tensor on one device (the meta device stands in for CUDA on a CPU machine)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from segclr.training.trainer import _check_ranks_in_sync


def test_rank_checksum_stays_on_the_weights_device_and_gathers_on_the_strategy_device(tmp_path):
    seen = []

    def all_gather(t):
        seen.append(t.device)
        return torch.tensor([[1.0, 2.0]], dtype=torch.float64)

    strategy = SimpleNamespace(root_device=torch.device("meta"), all_gather=all_gather)
    trainer = SimpleNamespace(strategy=strategy, is_global_zero=True, world_size=1)
    module = SimpleNamespace(net=torch.nn.Linear(3, 2, device="meta"), device=torch.device("cpu"))
    _check_ranks_in_sync(trainer, module, tmp_path)  # weights on "meta": a CPU arange would not mix with them
    assert seen == [torch.device("meta")]  # the strategy's device, not module.device (CPU after fit's teardown)
    assert json.loads((tmp_path / "ddp_check.json").read_text())["weight_checksums"] == [[1.0, 2.0]]
