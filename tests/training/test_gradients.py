"""Every trainable parameter gets a gradient in every mode (one step on real batches)."""

import pytest
import torch

from segclr.data.datamodule import SegCLRDataModule
from segclr.training.module import SegCLRModule

CASES = [
    {"objective": {"mode": "supervised"}},
    {"objective": {"mode": "upper_bound"}},
    {"objective": {"mode": "segclr_uda"}, "model": {"head": "ch"}, "data": {"pairs": "a"}},
    {"objective": {"mode": "segclr_uda"}, "model": {"head": "pool"}, "data": {"pairs": "s"}},
    {"objective": {"mode": "segclr_uda", "contrastive_loss": "simsiam"}, "data": {"pairs": "s+a"}},
    {"objective": {"mode": "segclr_dg"}, "model": {"head": "ch", "head_stage": 1}},
    {"objective": {"mode": "segclr_uda", "sup_loss": "dice"}, "model": {"norm": "group"}},
]


def _batch(dm: SegCLRDataModule) -> dict:
    loaders = dm.train_dataloader().iterables
    return {name: next(iter(loader)) for name, loader in loaders.items()}


@pytest.mark.parametrize("sections", CASES, ids=lambda s: "-".join(str(v) for d in s.values() for v in d.values()))
def test_every_parameter_gets_a_gradient(sections, bank, make_config):
    torch.manual_seed(0)
    cfg = make_config(**sections)
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    batch = _batch(dm)
    out = module.objective.step(module.net, batch, module.augment)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient for {missing}"
    if cfg.uses_contrastive:
        assert any(k.startswith("loss/con_") for k in out.logs)
        assert len([k for k in out.logs if k.startswith("loss/con_")]) == len(cfg.unlabeled_domains)


def test_total_loss_is_half_contrastive_sum_plus_lambda_sup(bank, make_config):
    torch.manual_seed(0)
    cfg = make_config(objective={"mode": "segclr_uda", "lambda_sup": 20.0})
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    out = module.objective.step(module.net, _batch(dm), module.augment)
    src, tgt = out.logs["loss/con_spectralis"], out.logs["loss/con_cirrus_like"]
    expected = 0.5 * (src + tgt) + 20.0 * out.logs["loss/sup"]
    assert torch.allclose(out.loss.detach(), expected, rtol=1e-5)
    # two pairs per domain in the tiny config -> 4 keys per NT-Xent query
    assert out.logs["con/keys"] == 4


def test_head_overhead_is_reported(make_config):
    module = SegCLRModule(make_config(objective={"mode": "segclr_uda"}).to_dict())
    text = module.describe()
    assert "Cch head" in text and "% over the UNet" in text
