"""Contrastive projection heads (training only; inference is the plain UNet).

* :class:`ChannelProjectionHead` (the paper's Cch): a 1x1 conv reduces the C channels of an
  encoder feature map to ``k`` while keeping its h x w layout, which is flattened and fed to
  an MLP. The spatial layout survives, so the contrastive gradient carries "where". The MLP's
  input size is ``k*h*w``, fixed by the training crop: build it for the feature-map size.
* :class:`PoolProjectionHead` (Cpool, SimCLR-style): global average pooling, then an MLP.
* :class:`SimSiamPredictor`: the SimSiam prediction MLP applied on top of either head.
"""

from __future__ import annotations

from torch import Tensor, nn


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


class ChannelProjectionHead(nn.Module):
    """Cch: (B, C, h, w) -> 1x1 conv to k channels -> flatten (B, k*h*w) -> MLP -> (B, out_dim).

    Args:
        in_channels: C of the tapped feature map.
        feature_size: (h, w) of the tapped feature map at the training crop size.
        reduced_channels: k (the paper's default is 1).
        hidden_dim, out_dim: MLP sizes.
    """

    def __init__(
        self, in_channels: int, feature_size: tuple[int, int], reduced_channels: int = 1,
        hidden_dim: int = 256, out_dim: int = 128,
    ) -> None:
        super().__init__()
        if reduced_channels < 1 or in_channels < 1:
            raise ValueError(f"channels must be >= 1, got in={in_channels}, k={reduced_channels}")
        self.feature_size = tuple(feature_size)
        # no bias: the MLP's BatchNorm1d removes any constant shift, so a bias would get no gradient
        self.reduce = nn.Conv2d(in_channels, reduced_channels, 1, bias=False)
        self.mlp = _mlp(reduced_channels * self.feature_size[0] * self.feature_size[1], hidden_dim, out_dim)

    def forward(self, feature: Tensor) -> Tensor:
        if tuple(feature.shape[-2:]) != self.feature_size:
            raise ValueError(
                f"ChannelProjectionHead was built for {self.feature_size[0]}x{self.feature_size[1]} feature maps "
                f"(set by the training crop size), got {feature.shape[-2]}x{feature.shape[-1]}"
            )
        return self.mlp(self.reduce(feature).flatten(1))


class PoolProjectionHead(nn.Module):
    """Cpool: global average pool (B, C, h, w) -> (B, C) -> MLP -> (B, out_dim)."""

    def __init__(self, in_channels: int, hidden_dim: int = 256, out_dim: int = 128) -> None:
        super().__init__()
        self.mlp = _mlp(in_channels, hidden_dim, out_dim)

    def forward(self, feature: Tensor) -> Tensor:
        return self.mlp(feature.mean(dim=(-2, -1)))


class SimSiamPredictor(nn.Module):
    """SimSiam's predictor h: a bottleneck MLP (out_dim -> hidden -> out_dim)."""

    def __init__(self, dim: int = 128, hidden_dim: int = 64) -> None:
        super().__init__()
        self.mlp = _mlp(dim, hidden_dim, dim)

    def forward(self, z: Tensor) -> Tensor:
        return self.mlp(z)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
