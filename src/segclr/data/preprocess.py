"""The one preprocessing rule shared by training and inference.

A B-scan of any size is resized (bilinear, antialiased for images; nearest for masks) so
that its height is ``input_height`` rows, keeping the aspect ratio, then padded at the bottom
and right to a multiple of ``2 ** depth`` for the UNet. Predictions are cropped back and
resized to the input's size. Intensities are the file's values scaled to [0, 1].
The parameters travel inside every model bundle, so new images are handled exactly as in
training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Preprocessing:
    input_height: int = 248
    pad_multiple: int = 16

    def to_dict(self) -> dict:
        return asdict(self)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        scale = self.input_height / height
        return self.input_height, max(1, int(round(width * scale)))


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, 1, H, W) float -> (B, 1, *size), bilinear with antialiasing when shrinking."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, H, W) long -> (B, *size), nearest neighbour."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()


def to_working(image: np.ndarray, mask: np.ndarray | None, prep: Preprocessing) -> tuple[Tensor, Tensor | None]:
    """One B-scan (H, W) [0, 1] -> working-resolution tensors (1, h, w) and (h, w)."""
    size = prep.working_size(*image.shape)
    img = resize_image(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None], size)[0]
    msk = None if mask is None else resize_mask(torch.from_numpy(np.asarray(mask, dtype=np.int64))[None], size)[0]
    return img, msk


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Zero-pad (B, C, H, W) at the bottom/right so H and W are multiples; returns the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)
