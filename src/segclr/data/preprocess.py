"""The one preprocessing rule shared by training and inference.

A B-scan is resized (bilinear, antialiased for images; nearest for masks) to the working
resolution, then padded at the bottom and right to a multiple of ``2 ** depth`` for the UNet.
Predictions are cropped back and resized to the input's size. Intensities are the file's values
scaled to [0, 1]. The parameters travel inside every model bundle, so new images are handled
exactly as in training.

The working resolution, the nnU-Net way: a model stores a *target pixel spacing* (um per row and
per column at the working resolution; by default the training data's median). A B-scan whose
spacing is known is resampled to that spacing, so the anatomy has the same size in pixels
whatever the device's grid (a 1024-row Cirrus B-scan and a 496-row Spectralis B-scan of the same
depth become the same number of rows). A B-scan of unknown spacing, and every B-scan of a model
without a target spacing (bundles written before spacing-aware preprocessing), is resized so
that its height is ``input_height`` rows, keeping its aspect ratio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


MAX_SPACING_UM = 1000.0  # over 1 mm per pixel is no OCT B-scan


def check_spacing(spacing_um, where: str) -> tuple[float, float] | None:
    """(row, column) spacing in um, validated; None stays None. ``where`` names the input in errors."""
    from segclr.io.images import InputError

    if spacing_um is None:
        return None
    try:
        row, col = (float(v) for v in spacing_um)
    except (TypeError, ValueError):
        raise InputError(f"{where}: pixel spacing must be two numbers (um per row, um per column), "
                         f"got {spacing_um!r}") from None
    for name, v in (("row", row), ("column", col)):
        if not np.isfinite(v) or v <= 0 or v > MAX_SPACING_UM:
            raise InputError(f"{where}: {name} spacing {v!r} um makes no sense for an OCT B-scan "
                             f"(must be > 0 and <= {MAX_SPACING_UM:g} um)")
    return row, col


@dataclass(frozen=True)
class Preprocessing:
    input_height: int = 496
    pad_multiple: int = 16
    # (row, column) um per pixel at the working resolution; None = the height rule only
    target_spacing_um: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.target_spacing_um is not None:
            object.__setattr__(self, "target_spacing_um", tuple(float(v) for v in self.target_spacing_um))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_spacing_um"] = list(self.target_spacing_um) if self.target_spacing_um else None
        return d

    @property
    def spacing_aware(self) -> bool:
        return self.target_spacing_um is not None

    def working_size(self, height: int, width: int, spacing_um: tuple[float, float] | None = None) -> tuple[int, int]:
        """Working (rows, columns) of a B-scan of (height, width) pixels at ``spacing_um`` (row, column)."""
        if self.target_spacing_um is not None and spacing_um is not None:
            (tr, tc), (sr, sc) = self.target_spacing_um, spacing_um
            return max(1, int(round(height * sr / tr))), max(1, int(round(width * sc / tc)))
        scale = self.input_height / height
        return self.input_height, max(1, int(round(width * scale)))


def median_working_spacing(spacings: list[tuple[float, float]], heights: list[int], input_height: int
                           ) -> tuple[float, float]:
    """The default target spacing: the median over training B-scans of their spacing at the working
    height (what the height rule would give them)."""
    rows = [sr * h / input_height for (sr, _), h in zip(spacings, heights)]
    cols = [sc * h / input_height for (_, sc), h in zip(spacings, heights)]
    return float(np.median(rows)), float(np.median(cols))


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


def to_working(image: np.ndarray, mask: np.ndarray | None, prep: Preprocessing,
               spacing_um: tuple[float, float] | None = None) -> tuple[Tensor, Tensor | None]:
    """One B-scan (H, W) [0, 1] at ``spacing_um`` -> working-resolution tensors (1, h, w) and (h, w)."""
    size = prep.working_size(*image.shape, spacing_um)
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
