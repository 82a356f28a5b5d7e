"""The supervised loss's MONAI configuration for 1, 2 and 4 classes, and the target it hands to MONAI.

Found by mutation testing (docs/testing.md): two classes (background + fluid, the Duke setting)
must be softmax/one-hot like any multiclass case, and the binary case needs a float target.
"""

from __future__ import annotations

import pytest
import torch

from segclr.losses import SUPERVISED_LOSS_KINDS, make_supervised_loss
from segclr.losses.dice import SupervisedSegLoss


def _dice_part(loss):
    return loss.loss if hasattr(loss.loss, "include_background") else loss.loss.dice


@pytest.mark.parametrize("kind", SUPERVISED_LOSS_KINDS)
@pytest.mark.parametrize("num_classes", [1, 2, 4])
def test_monai_options(kind, num_classes):
    loss = make_supervised_loss(kind, num_classes)
    assert isinstance(loss, SupervisedSegLoss) and loss.num_classes == num_classes
    dice = _dice_part(loss)
    multiclass = num_classes > 1
    assert dice.include_background is (not multiclass)
    assert dice.to_onehot_y is multiclass
    assert dice.softmax is multiclass and dice.sigmoid is (not multiclass)
    assert dice.batch is True
    assert _dice_part(make_supervised_loss(kind, num_classes, batch=False)).batch is False


def test_two_class_dice_by_hand():
    # batch soft Dice of the foreground channel of the softmax (MONAI's smoothing 1e-5)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 6, 6, generator=gen)
    labels = (torch.rand(2, 6, 6, generator=gen) > 0.6).long()
    p = logits.softmax(dim=1)[:, 1]
    y = labels.float()
    expected = 1 - (2 * (p * y).sum() + 1e-5) / (p.sum() + y.sum() + 1e-5)
    got = make_supervised_loss("dice", 2)(logits, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


class _Spy(torch.nn.Module):
    def forward(self, logits, target):
        self.target = target
        return logits.sum() * 0


@pytest.mark.parametrize("num_classes, dtype", [(1, torch.float64), (2, torch.long), (4, torch.long)])
def test_target_given_to_monai(num_classes, dtype):
    spy = _Spy()
    labels = torch.zeros(2, 5, 5, dtype=torch.int32)
    labels[0, 1, 1] = num_classes - 1
    SupervisedSegLoss(spy, num_classes)(torch.zeros(2, num_classes, 5, 5, dtype=torch.float64), labels)
    assert spy.target.shape == (2, 1, 5, 5) and spy.target.dtype == dtype
    assert torch.equal(spy.target[:, 0].long(), labels.long())
