"""Fold batch norm into the convolution before it, for inference.

In eval mode a ``BatchNorm2d`` is a fixed per-channel affine, so ``conv -> batch norm`` equals one
convolution with rescaled weights and a bias (PyTorch's ``fuse_conv_bn_eval``). Folding removes one
memory-bound pass over every feature map; the network computes the same function up to float
rounding. Only for networks that will not train again: the folded network has no batch norm left.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norm(net: nn.Module) -> int:
    """Fold every ``Conv2d`` directly followed by a ``BatchNorm2d`` (inside an ``nn.Sequential``) in place.

    ``net`` must be in eval mode. Returns how many batch norms were folded (0 for instance or group
    norm, which depend on the input and stay).

    Example:
        >>> import torch
        >>> from segclr.models import UNet
        >>> net = UNet(1, 2, base_channels=8, depth=2).eval()
        >>> x = torch.randn(1, 1, 32, 32)
        >>> before = net(x)
        >>> fold_batch_norm(net)
        10
        >>> bool(torch.allclose(before, net(x), atol=1e-5))
        True
    """
    if net.training:
        raise ValueError("fold_batch_norm needs a network in eval mode (call .eval() first)")
    folded = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
                folded += 1
    return folded
