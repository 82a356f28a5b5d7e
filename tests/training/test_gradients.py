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
    missing = [n for n, p in module.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
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


STUDY_CASES = [
    {"objective": {"mode": "dann"}},
    {"objective": {"mode": "entropy_min"}},
    {"objective": {"mode": "multi_domain"}},
    {"objective": {"mode": "segclr_uda"}, "data": {"target_patients": 1}},
]


@pytest.mark.parametrize("sections", STUDY_CASES,
                         ids=lambda s: "-".join(str(v) for d in s.values() for v in d.values()))
def test_study_modes_train_every_parameter(sections, bank, make_config):
    test_every_parameter_gets_a_gradient(sections, bank, make_config)


# ssl_pretrain has no labels, so its decoder gets no gradient by design: tested below.
def test_ssl_pretrain_trains_encoder_only(bank, make_config):
    """Without labels the decoder gets no gradient: only the encoder and head are pretrained."""
    torch.manual_seed(0)
    cfg = make_config(objective={"mode": "ssl_pretrain"})
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    assert "labeled" not in dm.train_dataloader().iterables
    out = module.objective.step(module.net, _batch(dm), module.augment)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.net.encoder.parameters())
    assert all(p.grad is not None for p in module.objective.head.parameters())
    assert all(p.grad is None for p in module.net.decoder.parameters())


def test_gradient_reversal_flips_the_encoders_gradient():
    from segclr.objectives.adaptation import grl_coefficient, reverse_gradient

    x = torch.randn(4, 3, requires_grad=True)
    (reverse_gradient(x, 0.5) * 2).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -1.0))
    y = torch.randn(4, 3, requires_grad=True)
    out = reverse_gradient(y, 1.0)
    assert torch.equal(out, y)  # identity forward
    assert grl_coefficient(0.0) == 0.0 and grl_coefficient(1.0) > 0.99


def test_adabn_changes_only_batchnorm_buffers(make_config):
    from segclr.objectives.adaptation import adapt_batchnorm

    module = SegCLRModule(make_config(objective={"mode": "adabn"}).to_dict())
    net = module.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n = adapt_batchnorm(net, torch.rand(6, 1, 32, 32) * 3 + 1)
    assert n > 0
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    bn_buffers = {f"{name}.{b}" for name, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
                  for b in ("running_mean", "running_var", "num_batches_tracked")}
    assert changed and changed <= bn_buffers
    assert any(k.endswith("running_mean") for k in changed)
    assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
