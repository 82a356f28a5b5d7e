"""Supervised Dice / Dice+CE losses built from MONAI."""

from __future__ import annotations

import pytest
import torch

from segclr.losses import SUPERVISED_LOSS_KINDS, make_supervised_loss

NUM_CLASSES = 4  # RETOUCH: background, IRF, SRF, PED


def _labels():
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[0, 2:6, 3:9] = 1
    labels[0, 10:14, 10:14] = 3
    labels[1, 4:12, 4:12] = 2
    return labels


def _confident_logits(labels, num_classes=NUM_CLASSES, margin=30.0):
    return margin * torch.nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def test_kinds():
    assert SUPERVISED_LOSS_KINDS == ("dice", "dice_ce")


@pytest.mark.parametrize("kind", SUPERVISED_LOSS_KINDS)
def test_perfect_prediction_is_near_zero(kind):
    labels = _labels()
    loss = make_supervised_loss(kind, NUM_CLASSES)(_confident_logits(labels), labels)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("kind", SUPERVISED_LOSS_KINDS)
def test_wrong_prediction_is_high(kind):
    labels = _labels()
    wrong = (labels + 1) % NUM_CLASSES  # every pixel assigned to another class
    loss = make_supervised_loss(kind, NUM_CLASSES)(_confident_logits(wrong), labels)
    assert loss.item() > 0.9


@pytest.mark.parametrize("kind", SUPERVISED_LOSS_KINDS)
def test_gradient_reaches_logits(kind):
    labels = _labels()
    logits = torch.randn(2, NUM_CLASSES, 16, 16, requires_grad=True)
    make_supervised_loss(kind, NUM_CLASSES)(logits, labels).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", SUPERVISED_LOSS_KINDS)
def test_multiclass_configuration(kind):
    monai_loss = make_supervised_loss(kind, NUM_CLASSES).loss
    dice = monai_loss if kind == "dice" else monai_loss.dice
    assert dice.include_background is False
    assert dice.batch is True


def test_fluid_free_slice_predicted_fluid_free_is_near_zero():
    # Most B-scans hold no fluid: absent classes correctly predicted absent must not be penalised.
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    loss = make_supervised_loss("dice", NUM_CLASSES)(_confident_logits(labels), labels)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("kind", SUPERVISED_LOSS_KINDS)
def test_binary_mode(kind):
    labels = (_labels() > 0).long()
    loss_fn = make_supervised_loss(kind, 1)
    perfect = 30.0 * (2.0 * labels.float() - 1.0).unsqueeze(1)
    assert loss_fn(perfect, labels).item() == pytest.approx(0.0, abs=1e-4)
    assert loss_fn(-perfect, labels).item() > 0.9


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown supervised loss kind 'focal'"):
        make_supervised_loss("focal", NUM_CLASSES)


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_bad_num_classes_raises(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        make_supervised_loss("dice", num_classes)


def test_bad_inputs_raise():
    loss_fn = make_supervised_loss("dice_ce", NUM_CLASSES)
    labels = _labels()
    with pytest.raises(ValueError, match=r"logits must have shape \(B, 4, H, W\)"):
        loss_fn(torch.randn(2, 3, 16, 16), labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(B, H, W\)"):
        loss_fn(torch.randn(2, 4, 16, 16), labels.unsqueeze(1))
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        loss_fn(torch.randn(2, 4, 16, 16), labels.float())


def _large_found_small_missed():
    """Image 0: a 10x10 pocket predicted exactly; image 1: a 2x2 pocket predicted as background."""
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[0, 3:13, 3:13] = 1
    labels[1, 7:9, 7:9] = 1
    pred = labels.clone()
    pred[1] = 0
    return _confident_logits(pred, 2), labels


def test_per_image_dice_weighs_a_missed_small_pocket_like_a_large_one():
    logits, labels = _large_found_small_missed()
    batch = make_supervised_loss("dice", 2, batch=True)(logits, labels).item()
    per_image = make_supervised_loss("dice", 2, batch=False)(logits, labels).item()
    # batch Dice: 2*100 / (100 + 104) -> loss 0.0196; per image: mean(0, 1) = 0.5
    assert batch == pytest.approx(1 - 200 / 204, abs=1e-3)
    assert per_image == pytest.approx(0.5, abs=1e-3)


def test_objectives_take_dice_batch_from_the_config():
    from segclr.config import from_dict
    from segclr.models import UNet
    from segclr.objectives.base import build_objective

    for mode in ("supervised", "segclr_uda", "dann", "entropy_min"):
        for flag in (True, False):
            cfg = from_dict({"objective": {"mode": mode, "dice_batch": flag}})
            net = UNet(1, cfg.model.num_classes, cfg.model.base_channels, cfg.model.depth)
            objective = build_objective(cfg, net)
            assert objective.sup_loss.loss.dice.batch is flag, (mode, flag)


def test_ce_fluid_weight_one_is_monais_dice_ce_and_above_one_weighs_missed_fluid_more():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 16, 16)
    labels = (torch.rand(3, 16, 16) > 0.9).long()
    plain = make_supervised_loss("dice_ce", 2)(logits, labels)
    assert make_supervised_loss("dice_ce", 2, ce_fluid_weight=1.0)(logits, labels).item() == plain.item()

    dice_only = make_supervised_loss("dice", 2)(logits, labels)
    weighted = make_supervised_loss("dice_ce", 2, ce_fluid_weight=3.0)
    expected = dice_only + torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor([1.0, 3.0]))
    assert weighted(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)

    # one pixel wrong each way: missing a fluid pixel now costs more than marking a false one
    ref = torch.zeros(1, 8, 8, dtype=torch.long)
    ref[0, 2:4, 2:4] = 1
    missed, false_alarm = ref.clone(), ref.clone()
    missed[0, 2, 2] = 0
    false_alarm[0, 6, 6] = 1
    ce = make_supervised_loss("dice_ce", 2, ce_fluid_weight=3.0)
    assert ce(_confident_logits(missed, 2), ref) > ce(_confident_logits(false_alarm, 2), ref)


@pytest.mark.parametrize("kind, classes, weight", [("dice", 2, 3.0), ("dice_ce", 1, 3.0), ("dice_ce", 2, 0.0)])
def test_ce_fluid_weight_rejects_what_it_cannot_weigh(kind, classes, weight):
    with pytest.raises(ValueError, match="ce_fluid_weight"):
        make_supervised_loss(kind, classes, ce_fluid_weight=weight)


def test_the_config_checks_ce_fluid_weight_and_objectives_use_it():
    from segclr.config import ConfigError, from_dict
    from segclr.models import UNet
    from segclr.objectives.base import build_objective

    with pytest.raises(ConfigError, match="ce_fluid_weight"):
        from_dict({"objective": {"sup_loss": "dice", "ce_fluid_weight": 2.0}})
    with pytest.raises(ConfigError, match="ce_fluid_weight"):
        from_dict({"objective": {"ce_fluid_weight": -1.0}})
    cfg = from_dict({"objective": {"mode": "supervised", "ce_fluid_weight": 4.0}})
    net = UNet(1, cfg.model.num_classes, cfg.model.base_channels, cfg.model.depth)
    assert build_objective(cfg, net).sup_loss.loss.weight.tolist() == [1.0, 4.0]
