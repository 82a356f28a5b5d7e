"""Blob Dice: one soft Dice per reference fluid component (Kofler et al. 2023)."""

from __future__ import annotations

import pytest
import torch

from segclr.losses import blob_dice_loss, label_components, make_supervised_loss


def _two_pockets():
    """One image, a large pocket (100 px) and a small one (4 px), far apart."""
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    labels[0, 2:12, 2:12] = 1
    labels[0, 25:27, 25:27] = 1
    return labels


def _logits_from_mask(mask: torch.Tensor, margin: float = 30.0) -> torch.Tensor:
    """Two-class logits that predict exactly ``mask`` (B, H, W) with high confidence."""
    fg = mask.float() * 2 - 1
    return torch.stack([-margin * fg, margin * fg], dim=1)


def test_label_components_uses_eight_connectivity():
    import numpy as np
    diagonal = np.eye(4, dtype=bool)
    _, n = label_components(diagonal)
    assert n == 1


def test_perfect_prediction_is_zero_and_empty_batch_keeps_the_graph():
    labels = _two_pockets()
    assert blob_dice_loss(_logits_from_mask(labels > 0), labels).item() == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    loss = blob_dice_loss(logits, torch.zeros(2, 8, 8, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None


def test_missing_the_small_pocket_costs_half_where_batch_dice_barely_moves():
    labels = _two_pockets()
    only_large = labels.clone()
    only_large[0, 25:27, 25:27] = 0
    logits = _logits_from_mask(only_large > 0)
    # two components, one found perfectly, one missed: mean Dice 0.5
    assert blob_dice_loss(logits, labels).item() == pytest.approx(0.5, abs=1e-3)
    batch_dice = make_supervised_loss("dice", 2)(logits, labels).item()
    assert batch_dice == pytest.approx(1 - 200 / 204, abs=1e-3)  # 2*100 / (100 + 104)


def test_other_components_are_masked_out_but_false_positives_count():
    labels = _two_pockets()
    # predicting every reference component perfectly: the others do not count against each one
    assert blob_dice_loss(_logits_from_mask(labels > 0), labels).item() < 1e-3
    fp = (labels > 0).clone()
    fp[0, 20:24, 2:7] = True  # 20 false-positive pixels on the background
    loss = blob_dice_loss(_logits_from_mask(fp), labels).item()
    large, small = 200 / (20 + 200), 8 / (20 + 8)
    assert loss == pytest.approx(1 - (large + small) / 2, abs=1e-3)


def test_gradient_pushes_the_missed_pocket_up():
    labels = _two_pockets()
    logits = torch.zeros(1, 2, 32, 32, requires_grad=True)
    blob_dice_loss(logits, labels).backward()
    grad_fg = logits.grad[0, 1]
    assert grad_fg[26, 26] < 0 and grad_fg[5, 5] < 0  # descending raises fluid on both pockets
    assert grad_fg[26, 26] < grad_fg[5, 5]             # and more per pixel on the small one
    assert grad_fg[18, 18] > 0                         # and lowers it on the background


def test_sigmoid_logits_and_bf16_inputs():
    labels = _two_pockets()
    one = 30.0 * ((labels > 0).float() * 2 - 1)[:, None]
    assert blob_dice_loss(one, labels).item() == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    full = blob_dice_loss(logits, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = blob_dice_loss(logits.bfloat16(), labels)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), abs=0.02)  # only the logits' bf16 rounding differs


def test_components_of_several_images_use_their_own_background():
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[0, 2:6, 2:6] = 1                    # image 0: one pocket of 16 px
    labels[1, 2:4, 2:4] = 1                    # image 1: two pockets of 4 px
    labels[1, 10:12, 10:12] = 1
    pred = labels > 0
    pred[0, 12:14, 12:16] = True               # 8 false-positive px, in image 0 only
    loss = blob_dice_loss(_logits_from_mask(pred), labels).item()
    image0 = 32 / (8 + 32)                     # image 1's pockets are untouched by image 0's false positives
    assert loss == pytest.approx(1 - (image0 + 1 + 1) / 3, abs=1e-3)


def test_touching_fluid_of_two_classes_is_one_component():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[0, 4:8, 4:6] = 1                    # IRF
    labels[0, 4:8, 6:8] = 2                    # SRF touching it: one pocket of 16 px
    labels[0, 12:14, 12:14] = 3                # PED apart: 4 px
    logits = 30.0 * torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    wrong_class = logits.clone()
    wrong_class[:, [1, 2]] = wrong_class[:, [2, 1]]   # fluid found, classes swapped: the blob term is blind to it
    assert blob_dice_loss(wrong_class, labels).item() == pytest.approx(0.0, abs=1e-4)
    missed = logits.clone()
    missed[0, :, 12:14, 12:14] = 30.0 * torch.tensor([1.0, 0, 0, 0])[:, None, None]
    assert blob_dice_loss(missed, labels).item() == pytest.approx(0.5, abs=1e-3)  # 2 components, one missed


def test_supervised_loss_adds_the_weighted_blob_term():
    labels = _two_pockets()
    logits = torch.randn(1, 2, 32, 32)
    plain = make_supervised_loss("dice_ce", 2)(logits, labels)
    with_blob = make_supervised_loss("dice_ce", 2, blob_weight=0.5)(logits, labels)
    assert with_blob.item() == pytest.approx(plain.item() + 0.5 * blob_dice_loss(logits, labels).item(), rel=1e-5)
    with pytest.raises(ValueError, match="blob_weight"):
        make_supervised_loss("dice_ce", 2, blob_weight=-1.0)
    with pytest.raises(ValueError, match="must match"):
        blob_dice_loss(logits, labels[:, :16])


def test_the_config_checks_the_new_keys_and_objectives_use_the_blob_weight():
    from segclr.config import ConfigError, from_dict
    from segclr.models import UNet
    from segclr.objectives.base import build_objective

    for bad in (-0.5, float("inf")):
        with pytest.raises(ConfigError, match="blob_weight"):
            from_dict({"objective": {"blob_weight": bad}})
    with pytest.raises(ConfigError, match="deep_supervision"):
        from_dict({"objective": {"blob_weight": 0.5, "deep_supervision": True}})
    with pytest.raises(ConfigError, match="fluid_crop_by"):
        from_dict({"data": {"fluid_crop_by": "blob"}})
    for mode in ("supervised", "segclr_uda", "dann"):
        cfg = from_dict({"objective": {"mode": mode, "blob_weight": 0.5}})
        net = UNet(1, cfg.model.num_classes, cfg.model.base_channels, cfg.model.depth)
        assert build_objective(cfg, net).sup_loss.blob_weight == 0.5
