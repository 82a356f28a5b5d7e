"""A 2D UNet with an explicit encoder feature contract.

``UNet.encode(x)`` returns the list of encoder feature maps, shallowest first, the last one
being the bottleneck; ``UNet.decode(features)`` turns that list into logits. ``feature_info``
states the channels and the spatial reduction of every stage, so a projection head can be
built for any stage without running the network.

Shape constraint: the input's height and width must be divisible by ``2 ** depth``
(``depth`` 2x downsamplings); :meth:`UNet.check_input` raises a ``ValueError``
naming the nearest valid sizes otherwise. Inference code pads to that multiple.

Two stems. ``conv`` (the default) is the classic UNet: its first stage runs two 3x3 convolutions
at full resolution with ``base_channels`` channels. ``s2d`` (space-to-depth) folds every 2x2 block
of pixels into 4 channels (``PixelUnshuffle``), so the network starts at half resolution with the
second stage's width, and its logits are unfolded back to full resolution (``PixelShuffle``). It
keeps the output resolution and the bottleneck, and drops the full-resolution stage: the one whose
thin convolutions run far below the CPU's limit (docs/performance.md). Its stages are the conv
stem's stages 1..depth, so ``feature_info`` lists ``depth`` stages with reductions 2 .. 2**depth.
``s2d_refine`` is ``s2d`` whose last decoder features (not its logits) are unfolded and mixed by one
thin 3x3 convolution at full resolution before the 1x1 output, so outlines can cross the borders of
the 2x2 blocks; it needs an even ``base_channels``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


STEMS = ("conv", "s2d", "s2d_refine")


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
        stem: ``conv`` (full-resolution first stage), ``s2d`` (space-to-depth) or ``s2d_refine``
            (space-to-depth plus one thin full-resolution layer); see the module doc.

    Example:
        >>> net = UNet(1, 2, base_channels=8, depth=4)
        >>> feats = net.encode(torch.zeros(2, 1, 64, 64))
        >>> net.decode(feats).shape
        torch.Size([2, 2, 64, 64])
        >>> UNet(1, 2, base_channels=8, depth=4, stem="s2d")(torch.zeros(2, 1, 64, 64)).shape
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
        stem: str = "conv",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; expected one of {', '.join(STEMS)}")
        self.depth, self.stem = depth, stem
        # the conv stem's stages 0..depth; s2d starts at stage 1, on 2x2 blocks folded into channels
        first = 0 if stem == "conv" else 1
        if stem == "s2d_refine" and base_channels % 2:
            raise ValueError(f"stem s2d_refine needs an even base_channels, got {base_channels}")
        chans = [base_channels * 2**i for i in range(first, depth + 1)]
        self.feature_info = [FeatureInfo(i, c, 2 ** (i + first)) for i, c in enumerate(chans)]
        top = len(chans) - 1
        self.fold = nn.PixelUnshuffle(2) if first else nn.Identity()
        self.encoder = nn.ModuleList(
            [ConvBlock(in_channels * 4**first, chans[0], norm, dropout if top == 0 else 0.0)]
            + [ConvBlock(chans[i - 1], chans[i], norm, dropout if i == top else 0.0) for i in range(1, top + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i], chans[i - 1], 2, stride=2) for i in range(top, 0, -1)])
        self.decoder = nn.ModuleList([ConvBlock(2 * chans[i - 1], chans[i - 1], norm) for i in range(top, 0, -1)])
        if stem == "s2d_refine":
            self.out = nn.Sequential(
                nn.PixelShuffle(2),  # 2 * base channels at half resolution -> base / 2 at full resolution
                nn.Conv2d(chans[0] // 4, base_channels, 3, padding=1, bias=False),
                make_norm(norm, base_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(base_channels, num_classes, 1),
            )
            self.unfold = nn.Identity()
        else:
            self.out = nn.Conv2d(chans[0], num_classes * 4**first, 1)
            self.unfold = nn.PixelShuffle(2) if first else nn.Identity()

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
        """Encoder feature maps, shallowest first, the bottleneck last (see ``feature_info``)."""
        self.check_input(x)
        return self.encode_unchecked(x)

    def encode_unchecked(self, x: Tensor) -> list[Tensor]:
        """:meth:`encode` without the input check (tracing for export keeps shapes dynamic)."""
        feats = [self.encoder[0](self.fold(x))]
        for block in self.encoder[1:]:
            feats.append(block(self.pool(feats[-1])))
        return feats

    def decode(self, feats: list[Tensor]) -> Tensor:
        return self.output(self.decode_levels(feats)[-1])

    def output(self, y: Tensor) -> Tensor:
        """Logits from the last decoder level (:meth:`decode_levels`)."""
        return self.unfold(self.out(y))

    def decode_levels(self, feats: list[Tensor]) -> list[Tensor]:
        """The decoder's feature maps after each of its blocks, coarsest first; the last feeds the output layer.

        Level ``i`` has ``feature_info[len(feats) - 2 - i].channels`` channels at that stage's reduction
        (deep supervision puts its auxiliary heads on the coarser ones).
        """
        y, levels = feats[-1], []
        for up, block, skip in zip(self.up, self.decoder, reversed(feats[:-1])):
            y = block(torch.cat([up(y), skip], dim=1))
            levels.append(y)
        return levels or [y]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
