"""Deep supervision: nnU-Net's weights, label resampling, the weighted loss, the objective and its config."""

from __future__ import annotations

import pytest
import torch

from segclr.config import ConfigError, from_dict
from segclr.losses import DeepSupervisionLoss, deep_supervision_weights, make_supervised_loss
from segclr.losses.dice import downsample_labels
from segclr.models import UNet
from segclr.objectives.base import build_objective


def test_weights_halve_from_the_finest_drop_the_coarsest_and_sum_to_one():
    assert deep_supervision_weights(4) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert deep_supervision_weights(2) == [1.0]
    assert deep_supervision_weights(1) == [1.0]
    with pytest.raises(ValueError, match="n_outputs"):
        deep_supervision_weights(0)


def test_labels_are_resampled_by_nearest_neighbour_and_keep_their_dtype():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, 0:4, 0:4] = 1
    labels[0, 5, 5] = 2  # one pixel on an odd row: nearest sampling at 1/2 keeps only even rows/columns
    half = downsample_labels(labels, (4, 4))
    assert half.dtype == torch.long and half.shape == (1, 4, 4)
    assert half[0, :2, :2].eq(1).all() and half[0, 2:, :].eq(0).all() and half[0, :, 2:].eq(0).all()
    assert downsample_labels(labels, (8, 8)) is labels


def test_the_weighted_loss_is_the_weighted_sum_of_each_outputs_loss():
    torch.manual_seed(0)
    sup = make_supervised_loss("dice_ce", 2)
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 4:12, 4:12] = 1
    outputs = [torch.randn(2, 2, 16, 16), torch.randn(2, 2, 8, 8), torch.randn(2, 2, 4, 4)]
    loss = DeepSupervisionLoss(sup, deep_supervision_weights(4))
    expected = sum(w * sup(o, downsample_labels(labels, o.shape[-2:])) for w, o in zip(loss.weights, outputs))
    assert loss(outputs, labels).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="expected 3 outputs"):
        loss(outputs[:2], labels)


def test_decode_levels_end_in_what_decode_returns():
    torch.manual_seed(0)
    net = UNet(1, 2, base_channels=4, depth=4).eval()
    feats = net.encode(torch.randn(1, 1, 32, 32))
    levels = net.decode_levels(feats)
    assert [lv.shape[-1] for lv in levels] == [4, 8, 16, 32]
    assert [lv.shape[1] for lv in levels] == [32, 16, 8, 4]
    assert torch.equal(net.output(levels[-1]), net.decode(feats))


def test_the_objective_trains_its_heads_and_the_saved_net_has_none():
    cfg = from_dict({"objective": {"mode": "supervised", "deep_supervision": True},
                     "model": {"base_channels": 4}, "augment": {"labeled": False}})
    net = UNet(1, 2, cfg.model.base_channels, cfg.model.depth)
    obj = build_objective(cfg, net)
    assert [h.in_channels for h in obj.ds_heads] == [8, 16]  # decoder levels at 1/2 and 1/4
    assert "2 auxiliary heads" in obj.describe(net)
    images = torch.rand(2, 1, 32, 32)
    masks = torch.zeros(2, 32, 32, dtype=torch.long)
    masks[:, 8:20, 8:20] = 1
    out = obj.step(net, {"labeled": {"image": images, "mask": masks}}, torch.nn.Identity())
    out.loss.backward()
    assert out.logs["loss/deep_sup"] != out.logs["loss/sup"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.ds_heads.parameters())
    assert not any(k.startswith("ds_heads") for k in net.state_dict())
    plain = build_objective(from_dict({"objective": {"mode": "supervised"}}), net)
    assert plain.ds_heads is None and plain.describe(net) == ""


@pytest.mark.parametrize("values, match", [
    ({"objective": {"mode": "segclr_uda", "deep_supervision": True}}, "segclr_uda does not take it"),
    ({"objective": {"mode": "dann", "deep_supervision": True}}, "dann does not take it"),
    ({"objective": {"mode": "supervised", "deep_supervision": True}, "model": {"depth": 2}}, ">= 3 levels"),
    ({"objective": {"mode": "supervised", "deep_supervision": True}, "model": {"depth": 3, "stem": "s2d"}},
     ">= 3 levels"),
])
def test_the_config_refuses_deep_supervision_where_it_cannot_apply(values, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(values)
