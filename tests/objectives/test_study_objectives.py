"""The study's correctness fixes at the objective level: negatives, BatchNorm, AdaBN, upper bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from segclr.data.datamodule import SegCLRDataModule
from segclr.io.images import InputError
from segclr.objectives.adaptation import adapt_batchnorm
from segclr.objectives.base import forward_split
from segclr.objectives.segclr import NoNegativesError
from segclr.training.module import SegCLRModule


def _batch(dm: SegCLRDataModule) -> dict:
    loaders = dm.train_dataloader().iterables
    return {name: next(iter(loader)) for name, loader in loaders.items()}


def _step(cfg, bank):
    torch.manual_seed(0)
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    return module, dm, module.objective.step(module.net, _batch(dm), module.augment)


def test_one_target_patient_still_trains_the_target_term(bank, make_config):
    """Regression: with data.target_patients=1 the target NT-Xent term was exactly 0 (all negatives masked)."""
    cfg = make_config(objective={"mode": "segclr_uda"}, data={"target_patients": 1, "batch_size": 4, "pairs": "a"})
    module, dm, out = _step(cfg, bank)
    assert [v.patient for v in dm._unlabeled["cirrus_like"]] == [6]
    assert out.logs["loss/con_cirrus_like"] > 0.1
    assert out.logs["con/negatives_cirrus_like"] == 2 * 4 - 2  # Pa masks nothing
    out.loss.backward()
    head = module.objective.head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


@pytest.mark.parametrize("pairs", ["s", "s+a"])
def test_ps_keeps_negatives_with_one_volume(pairs, bank, make_config):
    cfg = make_config(objective={"mode": "segclr_uda"}, data={"target_patients": 1, "batch_size": 8, "pairs": pairs})
    _, _, out = _step(cfg, bank)
    # 11 slices, 8 stratified anchors, neighbours within 2 slices masked: every query keeps some
    assert out.logs["con/negatives_min_cirrus_like"] >= 1
    assert out.logs["con/negatives_cirrus_like"] < 2 * 8 - 2  # and some neighbours were masked
    assert out.logs["loss/con_cirrus_like"] > 0


def test_a_term_without_negatives_fails_loudly(bank, make_config):
    cfg = make_config(objective={"mode": "segclr_dg"}, data={"batch_size": 2, "pairs": "s"})
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    batch = _batch(dm)
    batch["spectralis"]["group"] = torch.tensor([1, 1])
    batch["spectralis"]["slice1"], batch["spectralis"]["slice2"] = torch.tensor([3, 4]), torch.tensor([4, 5])
    with pytest.raises(NoNegativesError, match="spectralis has no negatives"):
        module.objective.step(module.net, batch, module.augment)


def test_ps_on_one_short_volume_is_refused_before_training(tmp_path, make_config):
    from segclr.io.metaimage import write_metaimage
    from segclr.io.volumes import Volume

    for name, labeled in (("src", True), ("tgt", False)):
        folder = tmp_path / name
        write_metaimage(folder / "oct.mhd", Volume(np.full((5, 64, 64), 100, np.uint8), (0.1, 0.01, 0.01)))
        if labeled:
            write_metaimage(folder / "reference.mhd", Volume(np.zeros((5, 64, 64), np.uint8), (0.1, 0.01, 0.01)))
    spec = {"domains": {"a": [{"folder": "src", "role": "source_train"}],
                        "b": [{"folder": "tgt", "role": "target_train"}]}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(spec))
    cfg = make_config(objective={"mode": "segclr_uda"}, data={
        "dataset": str(tmp_path / "d.yaml"), "source_domain": "a", "target_domains": ["b"], "pairs": "s",
        "eval_domains": ["a"]})
    with pytest.raises(InputError, match="domain a: one volume of 5 B-scans leaves Ps pairs no negatives"):
        SegCLRDataModule(cfg).setup("fit")


def test_ps_pairs_of_a_users_volume_are_true_neighbours(tmp_path, make_config):
    """On a contiguous volume from a dataset file, Ps pairs B-scans at most pair_distance apart."""
    from segclr.io.metaimage import write_metaimage
    from segclr.io.volumes import Volume

    slices = np.stack([np.full((64, 64), 10 * k, np.uint8) for k in range(20)])  # B-scan k holds 10k
    write_metaimage(tmp_path / "src" / "oct.mhd", Volume(slices, (0.1, 0.01, 0.01)))
    write_metaimage(tmp_path / "src" / "reference.mhd", Volume(np.zeros_like(slices), (0.1, 0.01, 0.01)))
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"domains": {"a": [{"folder": "src", "role": "source_train"}]}}))
    cfg = make_config(objective={"mode": "segclr_dg"}, data={
        "dataset": str(tmp_path / "d.yaml"), "source_domain": "a", "target_domains": [], "pairs": "s",
        "pair_distance": 1, "batch_size": 8, "eval_domains": ["a"]})
    dm = SegCLRDataModule(cfg)
    dm.setup("fit")
    batch = _batch(dm)["a"]
    v1 = torch.round(batch["view1"][:, 0, 0, 0] * 255 / 10)
    v2 = torch.round(batch["view2"][:, 0, 0, 0] * 255 / 10)
    assert torch.equal(v1.long(), batch["slice1"]) and torch.equal(v2.long(), batch["slice2"])
    assert ((batch["slice1"] - batch["slice2"]).abs() == 1).all()
    # stratified anchors: 8 pairs spread over the 20 B-scans, not bunched
    assert batch["slice1"].max() - batch["slice1"].min() >= 12


def test_labeled_bn_stats_keep_unlabeled_images_out_of_the_running_statistics(bank, make_config):
    cfg = make_config(objective={"mode": "segclr_uda", "bn_stats": "labeled"})
    torch.manual_seed(0)
    module = SegCLRModule(cfg.to_dict())
    reference = SegCLRModule(cfg.to_dict())
    reference.load_state_dict(module.state_dict())
    x = torch.rand(2, 1, 32, 32)
    others = [torch.rand(4, 1, 32, 32)]
    feats = forward_split(module.net, module.net.encode, x, others, "labeled")
    alone = reference.net.encode(x)
    bn = [m for m in module.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn_ref = [m for m in reference.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for a, b in zip(bn, bn_ref):
        assert torch.allclose(a.running_mean, b.running_mean) and torch.allclose(a.running_var, b.running_var)
    assert torch.allclose(feats[-1][:2], alone[-1], atol=1e-6)  # labeled features: labeled-only statistics
    assert all(m.momentum == 0.1 for m in bn)  # restored after the unlabeled pass
    joint = forward_split(reference.net, reference.net.encode, x, others, "joint")
    assert not torch.allclose(joint[-1][:2], alone[-1], atol=1e-4)  # the confound the switch removes


@pytest.mark.parametrize("mode", ["dann", "entropy_min"])
def test_bn_stats_switch_reaches_the_adaptation_baselines(mode, bank, make_config):
    for bn_stats in ("joint", "labeled"):
        _, _, out = _step(make_config(objective={"mode": mode, "bn_stats": bn_stats}), bank)
        assert torch.isfinite(out.loss)


def test_adabn_uses_every_target_bscan_with_equal_weight():
    """Regression: batches of 16, 16 and 1 weighed the last B-scan as much as 16 others."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3))
    images = torch.rand(33, 1, 8, 8)
    images[-1] += 5.0  # one outlier B-scan
    net.eval()
    adapt_batchnorm(net, images)
    with torch.no_grad():
        act = net[0](images)
    bn = net[1]
    assert torch.allclose(bn.running_mean, act.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, act.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4)
    assert bn.momentum == 0.1 and not net.training


def test_upper_bound_has_as_many_labels_as_the_baseline(bank, make_config):
    sup = SegCLRDataModule(make_config(objective={"mode": "supervised"}), bank)
    ub = SegCLRDataModule(make_config(objective={"mode": "upper_bound"}), bank)
    sup.setup("fit")
    ub.setup("fit")
    assert [v.patient for v in ub._labeled] == [v.patient for v in sup._labeled] == [1, 2, 3, 4, 5]
    assert {v.domain for v in ub._labeled} == {"cirrus_like"}
    assert sum(len(v.images) for v in ub._labeled) == sum(len(v.images) for v in sup._labeled) == 55


def test_contrastive_weight_zero_is_the_batch_composition_control(bank, make_config):
    cfg = make_config(objective={"mode": "segclr_uda", "lambda_con": 0.0, "lambda_sup": 20.0})
    module, _, out = _step(cfg, bank)
    assert out.logs["loss/con"] > 0  # still computed and logged: target images pass the encoder
    assert torch.allclose(out.loss.detach(), 20.0 * out.logs["loss/sup"])
    out.loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in module.objective.head.parameters())


def test_labeled_branch_without_augmentation_sees_the_raw_crops(bank, make_config):
    cfg = make_config(objective={"mode": "supervised"}, augment={"labeled": False})
    module = SegCLRModule(cfg.to_dict())
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    batch = _batch(dm)
    x, y = module.objective.labeled_batch(module.augment, batch["labeled"])
    assert x is batch["labeled"]["image"] and y is batch["labeled"]["mask"]
    on = SegCLRModule(make_config(objective={"mode": "supervised"}).to_dict())
    x_aug, _ = on.objective.labeled_batch(on.augment, batch["labeled"])
    assert not torch.equal(x_aug, batch["labeled"]["image"])
