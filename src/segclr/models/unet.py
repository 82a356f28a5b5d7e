"""A 2D UNet with an explicit encoder feature contract.

``UNet.encode(x)`` returns the list of encoder feature maps, shallowest first, the last one
being the bottleneck; ``UNet.decode(features)`` turns that list into logits. ``feature_info``
states the channels and the spatial reduction of every stage, so a projection head can be
built for any stage without running the network.

Shape constraint: the input's height and width must be divisible by ``2 ** depth``
(``depth`` 2x2 max-pool downsamplings); :meth:`UNet.check_input` raises a ``ValueError``
naming the nearest valid sizes otherwise. Inference code pads to that multiple.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; expected batch, instance or group")


class ConvBlock(nn.Sequential):
    """(conv 3x3 -> norm -> ReLU) x 2."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            make_norm(norm, out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            make_norm(norm, out_ch),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


@dataclass(frozen=True)
class FeatureInfo:
    stage: int
    channels: int
    reduction: int  # input size / feature-map size


class UNet(nn.Module):
    """2D UNet: ``depth`` downsamplings, channels ``base * 2**stage``.

    Args:
        in_channels: image channels (1 for OCT).
        num_classes: output channels, background included.
        base_channels: channels of the first stage.
        depth: number of 2x downsamplings (the bottleneck is stage ``depth``).
        norm: ``batch``, ``instance`` or ``group``.
        dropout: Dropout2d probability in the bottleneck.

    Example:
        >>> net = UNet(1, 2, base_channels=8, depth=4)
        >>> feats = net.encode(torch.zeros(2, 1, 64, 64))
        >>> net.decode(feats).shape
        torch.Size([2, 2, 64, 64])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 16,
        depth: int = 4,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        self.depth = depth
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.feature_info = [FeatureInfo(i, c, 2**i) for i, c in enumerate(chans)]
        self.encoder = nn.ModuleList(
            [ConvBlock(in_channels, chans[0], norm)]
            + [ConvBlock(chans[i - 1], chans[i], norm, dropout if i == depth else 0.0) for i in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i], chans[i - 1], 2, stride=2) for i in range(depth, 0, -1)])
        self.decoder = nn.ModuleList([ConvBlock(2 * chans[i - 1], chans[i - 1], norm) for i in range(depth, 0, -1)])
        self.out = nn.Conv2d(chans[0], num_classes, 1)

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f"UNet expects (B, C, H, W), got shape {tuple(x.shape)}")
        m = self.size_multiple
        h, w = x.shape[-2:]
        if h % m or w % m:
            def near(v: int) -> str:
                lo = max(m, v // m * m)
                return f"{lo} or {lo + m}" if lo != v else str(v)

            raise ValueError(
                f"input size {h}x{w} is not divisible by 2**depth = {m}; use e.g. "
                f"height {near(h)} and width {near(w)} (pad or crop), or a smaller depth"
            )

    def encode(self, x: Tensor) -> list[Tensor]:
        """Encoder feature maps, stage 0 (full size) to stage ``depth`` (bottleneck)."""
        self.check_input(x)
        feats = [self.encoder[0](x)]
        for block in self.encoder[1:]:
            feats.append(block(self.pool(feats[-1])))
        return feats

    def decode(self, feats: list[Tensor]) -> Tensor:
        y = feats[-1]
        for up, block, skip in zip(self.up, self.decoder, reversed(feats[:-1])):
            y = block(torch.cat([up(y), skip], dim=1))
        return self.out(y)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
