"""Non-finite guard: bad steps are skipped and counted; too many in a row stop training clearly."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from segclr.training.module import NonFiniteError, SegCLRModule


class _Batches(IterableDataset):
    """Labeled batches of 2 crops; those at the given indices carry a NaN pixel."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        k = 0
        while True:
            image = torch.rand(2, 1, 32, 32, generator=g)
            mask = (image[:, 0] > 0.7).long()
            if k in self.bad:
                image[0, 0, 3, 3] = float("nan")
            yield {"labeled": {"image": image, "mask": mask}}
            k += 1


def _trainer(steps: int) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def _module(make_config, max_bad: int) -> SegCLRModule:
    cfg = make_config(objective={"mode": "supervised"}, trainer={"max_bad_steps": max_bad})
    return SegCLRModule(cfg.to_dict())


def test_isolated_bad_steps_are_skipped_and_counted(make_config):
    module = _module(make_config, max_bad=3)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    _trainer(6).fit(module, DataLoader(_Batches({1, 3, 4}), batch_size=None))
    assert module.skipped_steps == 3
    assert all(torch.isfinite(p).all() for p in module.net.parameters())
    assert any(not torch.equal(before[k], v) for k, v in module.net.state_dict().items())


def test_consecutive_bad_steps_stop_with_the_cause(make_config):
    module = _module(make_config, max_bad=3)
    with pytest.raises(NonFiniteError, match=r"3 consecutive .*labeled\.image.*Last good checkpoint"):
        _trainer(10).fit(module, DataLoader(_Batches(set(range(2, 10))), batch_size=None))
    assert all(torch.isfinite(p).all() for p in module.net.parameters())


def test_nonfinite_loss_is_caught(make_config):
    module = _module(make_config, max_bad=2)
    with torch.no_grad():
        module.net.out.weight.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="non-finite loss"):
        _trainer(5).fit(module, DataLoader(_Batches(set()), batch_size=None))
