"""SVDNA restyling (segclr.data.svdna) and its two modes, svdna and svdna_segclr_uda."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from segclr.cli import main
from segclr.config import ConfigError, SVDNAConfig, load_config
from segclr.data.datamodule import SegCLRDataModule
from segclr.data.domains import SPLITS, DomainBank
from segclr.data.svdna import SVDNARestyle, build_restyle, restyled_labeled, svdna_restyle
from segclr.inference.shift import split_bundle_tensors
from segclr.io.bundle import load_bundle
from segclr.training.module import SegCLRModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SVDNA_MODES = ["svdna", "svdna_segclr_uda"]


def _images(n: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(seed))


def _batch(dm: SegCLRDataModule) -> dict:
    loaders = dm.train_dataloader().iterables
    return {name: next(iter(loader)) for name, loader in loaders.items()}


# ----------------------------------------------------------------------------- the transform
def test_full_rank_k_gives_the_source_back_unchanged():
    src, tgt = _images(seed=0), _images(seed=1)
    rank = min(src.shape[-2:])
    for k in (rank, rank + 7):
        out = svdna_restyle(src, tgt, torch.full((3,), k), histogram=False)
        assert torch.equal(out, src)


def test_full_rank_k_with_the_histogram_step_keeps_the_order_and_takes_the_target_histogram():
    src, tgt = _images(seed=0), _images(seed=1)
    out = svdna_restyle(src, tgt, torch.full((3,), 20), histogram=True)
    for o, s, t in zip(out, src, tgt):
        assert torch.equal(o.flatten().sort().values, t.flatten().sort().values)
        assert torch.equal(o.flatten().argsort(), s.flatten().argsort())


def test_k_zero_without_the_histogram_step_gives_the_target():
    src, tgt = _images(seed=0), _images(seed=1)
    out = svdna_restyle(src, tgt, torch.zeros(3, dtype=torch.long), histogram=False)
    assert torch.allclose(out, tgt, atol=1e-5)
    assert not torch.allclose(out, src, atol=1e-2)


def test_batched_restyle_equals_one_image_at_a_time_with_its_own_k():
    src, tgt = _images(4, 32, 32, seed=2), _images(4, 32, 32, seed=3)
    k = torch.tensor([0, 3, 10, 32])
    out = svdna_restyle(src, tgt, k)
    for i in range(4):
        alone = svdna_restyle(src[i:i + 1], tgt[i:i + 1], k[i:i + 1])
        assert torch.allclose(out[i:i + 1], alone, atol=1e-6)
    # intermediate k: keeps the source's leading components, takes the target's trailing ones
    mid = svdna_restyle(src, tgt, torch.full((4,), 8), histogram=False)
    s_src, s_mid = torch.linalg.svdvals(src[:, 0]), torch.linalg.svdvals(mid[:, 0])
    assert torch.allclose(s_mid[:, 0], s_src[:, 0], rtol=0.2)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_restyle_module_draws_per_image_and_reproducibly():
    src, tgt = _images(8, 16, 16, seed=4), _images(5, 16, 16, seed=5)
    off = SVDNARestyle(SVDNAConfig(prob=0.0), ["t"])
    assert off(src, tgt) is src
    some = SVDNARestyle(SVDNAConfig(prob=0.5, k=(2, 6)), ["t"])
    a = some(src, tgt, torch.Generator().manual_seed(7))
    b = some(src, tgt, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    same = [torch.equal(a[i], src[i]) for i in range(8)]
    assert any(same) and not all(same)          # per-image coin: some restyled, some bit for bit
    # k = 0, no histogram, every image restyled: each output is one of the target crops
    to_target = SVDNARestyle(SVDNAConfig(prob=1.0, k=(0, 0), histogram=False), ["t"])
    out = to_target(src, tgt, torch.Generator().manual_seed(1))
    for o in out:
        assert min(float((o - t).abs().max()) for t in tgt) < 1e-5


def test_svdna_config_values_are_checked(make_config):
    with pytest.raises(ConfigError, match="svdna.k"):
        make_config(objective={"mode": "svdna"}, svdna={"k": [10, 5]})
    with pytest.raises(ConfigError, match="svdna.prob"):
        make_config(objective={"mode": "svdna"}, svdna={"prob": 1.5})
    with pytest.raises(ConfigError, match="target_patients"):
        make_config(objective={"mode": "svdna"}, data={"target_patients": 0})
    # other modes build no restyler
    assert build_restyle(make_config(objective={"mode": "segclr_uda"})) is None
    assert build_restyle(make_config(objective={"mode": "supervised"})) is None


# ----------------------------------------------------------------------------- in the modes
@pytest.mark.parametrize("mode", SVDNA_MODES)
def test_restyling_leaves_the_masks_untouched(mode, bank, make_config):
    cfg = make_config(objective={"mode": mode}, svdna={"prob": 1.0}, augment={"labeled": False})
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    batch = _batch(dm)
    mask = batch["labeled"]["mask"].clone()
    lab = restyled_labeled(module.objective.svdna, batch, module.augment)
    assert lab["mask"] is batch["labeled"]["mask"] and torch.equal(lab["mask"], mask)
    assert not torch.equal(lab["image"], batch["labeled"]["image"])   # the images did change
    # the supervised term sees exactly the batch's masks
    seen = []
    module.objective.sup_loss.register_forward_pre_hook(lambda _, args: seen.append(args[1]))
    module.objective.step(module.net, batch, module.augment)
    assert len(seen) == 1 and torch.equal(seen[0], mask)


def _marked_bank(bank: DomainBank) -> DomainBank:
    """cirrus_like whose every B-scan is the constant patient / 20: a crop tells its patient."""
    marked = copy.copy(bank)
    marked._cache = {"spectralis": bank.domain("spectralis")}
    marked._cache["cirrus_like"] = [
        dataclasses.replace(v, domain="cirrus_like", images=[np.full_like(im, v.patient / 20.0) for im in v.images],
                            masks=[m.copy() for m in v.masks])
        for v in bank.domain("spectralis")
    ]
    return marked


@pytest.mark.parametrize("mode", SVDNA_MODES)
def test_restyling_draws_only_from_target_train_patients(mode, bank, make_config):
    marked = _marked_bank(bank)
    cfg = make_config(objective={"mode": mode}, svdna={"prob": 1.0, "k": [0, 0], "histogram": False},
                      data={"batch_size": 4})
    restyle = build_restyle(cfg)
    assert restyle.target_domains == ["cirrus_like"]  # never the source's pair stream
    dm = SegCLRDataModule(cfg, marked)
    dm.setup("fit")
    assert sorted(v.patient for v in dm._unlabeled["cirrus_like"]) == list(SPLITS["target_train"])
    loaders = {name: iter(loader) for name, loader in dm.train_dataloader().iterables.items()}
    drawn = set()
    for _ in range(10):
        batch = {name: next(it) for name, it in loaders.items()}
        out = restyle.labeled(batch, None)["image"]
        values = out.flatten(1)
        assert torch.allclose(values, values[:, :1], atol=1e-5)          # each crop: one target crop
        drawn |= {round(float(v) * 20) for v in values[:, 0]}
    assert drawn <= set(SPLITS["target_train"]) and not drawn & set(SPLITS["test"])
    assert len(drawn) >= 2


@pytest.mark.parametrize("mode", SVDNA_MODES)
def test_two_cli_steps_train_and_every_parameter_gets_a_gradient(mode, tmp_path, bank, make_config):
    tiny = ["--set", "data.crop_size=32", "--set", "data.batch_size=2", "--set", "data.input_height=64",
            "--set", "model.base_channels=4", "--set", "model.depth=2", "--set", "model.head_hidden=16",
            "--set", "model.embedding_dim=8", "--set", "trainer.progress_bar=false",
            "--set", "trainer.log_every_n_steps=1", "--set", "trainer.checkpoint_every_n_steps=1",
            "--set", "trainer.max_steps=2", "--set", "svdna.prob=1.0", "--set", "svdna.k=[4,12]"]
    out = tmp_path / mode
    assert main(["fit", "--config", str(CONFIGS / f"{mode}.yaml"), "--out", str(out), *tiny]) == 0
    assert f"mode: {mode}" in (out / "config.yaml").read_text()
    cfg = load_config(out / "config.yaml")
    assert cfg.objective.mode == mode and cfg.svdna.k == (4, 12)

    # every UNet tensor moved away from the initialisation fit() started from
    L.seed_everything(cfg.trainer.seed, verbose=False)
    start = SegCLRModule(cfg.to_dict()).net.state_dict()
    trained, _ = split_bundle_tensors(load_bundle(out / "model.safetensors")[0])
    frozen = [k for k, v in start.items() if v.is_floating_point() and torch.equal(v, trained[k])]
    assert not frozen, f"not trained: {frozen}"

    # one step of the same config: every parameter (UNet and head) gets a gradient
    torch.manual_seed(0)
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    step = module.objective.step(module.net, _batch(dm), module.augment)
    assert torch.isfinite(step.loss)
    step.loss.backward()
    missing = [n for n, p in module.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient for {missing}"
    assert ("loss/con_cirrus_like" in step.logs) == (mode == "svdna_segclr_uda")
