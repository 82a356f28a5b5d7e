"""Folding batch norm into the convolutions: same function, no batch norm left, only in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segclr.models import UNet, fold_batch_norm


def _trained_like(stem: str = "conv", norm: str = "batch") -> UNet:
    """A UNet whose batch norms hold non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    net = UNet(1, 2, base_channels=4, depth=2, norm=norm, stem=stem)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.affine:
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
        net.train()
        for _ in range(5):
            net(3.0 * torch.rand(4, 1, 32, 32) + 1.0)  # running stats far from (0, 1)
    return net.eval()


@pytest.mark.parametrize("stem, folded", [("conv", 10), ("s2d", 6), ("s2d_refine", 7)])
def test_folding_keeps_the_function_and_removes_every_batch_norm(stem, folded):
    net = _trained_like(stem)
    x = torch.rand(3, 1, 32, 48)
    with torch.no_grad():
        before, feats_before = net(x), net.encode(x)
        assert fold_batch_norm(net) == folded
        after, feats_after = net(x), net.encode(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert before.abs().max() > 0.1  # a comparison of two near-zero maps would prove nothing
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    for a, b in zip(feats_after, feats_before):  # the shift score reads the bottleneck
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert torch.equal(after.argmax(1), before.argmax(1))


@pytest.mark.parametrize("norm", ["instance", "group"])
def test_input_dependent_norms_are_left_alone(norm):
    net = _trained_like(norm=norm)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before = net(x)
        assert fold_batch_norm(net) == 0
        torch.testing.assert_close(net(x), before, atol=0, rtol=0)


def test_folding_a_training_network_is_refused():
    net = UNet(1, 2, base_channels=4, depth=2)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norm(net)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_the_docstring_example_holds():
    import doctest

    import segclr.models.fold as fold

    result = doctest.testmod(fold)
    assert result.attempted >= 5 and result.failed == 0
