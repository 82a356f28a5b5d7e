"""Batched, on-device augmentation of OCT B-scans (the ``a`` in SegCLR's pairs Pa and Ps+a).

SegCLR learns device invariance from its positive pairs: two views of the same B-scan
must map to nearby embeddings, so every difference between the views becomes something
the encoder learns to ignore. The augmentations therefore imitate what changes between
OCT devices (Spectralis, Cirrus, Topcon, ...) rather than generic image corruptions:

* **gamma / contrast / brightness** - each vendor maps the logarithmic OCT signal to 8-bit
  grey values with its own display curve (gamma), dynamic range (contrast around the
  image mean) and offset (brightness).
* **multiplicative speckle** - ``x * Gamma(L, 1/L)`` with ``L`` "looks": devices average a
  different number of frames per B-scan (Spectralis' eye tracking averages many, others few
  or one), which changes the speckle statistics; ``L`` large means heavily averaged (clean),
  ``L = 1`` fully developed single-frame speckle. The noise has unit mean, so the image's
  brightness is preserved on average.
* **Gaussian blur** - differences of the optical point-spread function and axial/lateral
  resolution between devices.
* **additive Gaussian noise** - different detector noise floors.
* **flip / isotropic scale / small rotation** - left/right eyes, field-of-view and pixel
  spacing differences, head tilt. These are applied identically to the image and its mask
  so segmentation labels stay aligned.

Everything runs on whole batches on the images' device: one ``affine_grid`` +
``grid_sample`` for the geometry, elementwise ops for intensities and one grouped
separable convolution for the per-sample blur. Every random parameter is drawn per
sample, so two calls on the same batch give two independent views (the pair Pa), and
samples within a batch get different parameters.

Example::

    >>> import torch
    >>> from segclr.config import AugmentConfig
    >>> from segclr.data.augment import BatchAugment
    >>> aug = BatchAugment(AugmentConfig())
    >>> images = torch.rand(8, 1, 128, 128)           # float in [0, 1]
    >>> masks = torch.randint(0, 2, (8, 128, 128))    # long class indices
    >>> view1, m1 = aug(images, masks)
    >>> view2, _ = aug(images)                        # independent second view
    >>> view1.shape, m1.dtype
    (torch.Size([8, 1, 128, 128]), torch.int64)
    >>> g = torch.Generator().manual_seed(0)          # reproducible draw
    >>> v, _ = aug(images, generator=g)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from segclr.config import AugmentConfig

__all__ = ["BatchAugment"]

# Columns of the per-sample uniform draw (B, _NPARAMS); one draw per call.
_FLIP, _SCALE, _ROT, _GAMMA, _CONTRAST, _BRIGHT, _SPK_ON, _LOOKS, _NOISE, _BLUR_ON, _SIGMA = range(11)
_NPARAMS = 11


def _lerp(u: Tensor, bounds: tuple[float, float]) -> Tensor:
    """Map uniform [0, 1) draws onto ``[lo, hi]``."""
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo + (hi - lo) * u


def _degenerate(bounds: tuple[float, float], value: float) -> bool:
    return float(bounds[0]) == value and float(bounds[1]) == value


class BatchAugment(torch.nn.Module):
    """Per-sample random augmentation of a batch of B-scans (and optionally their masks).

    Args:
        cfg: :class:`~segclr.config.AugmentConfig` with the parameter ranges.

    Call ``aug(images, masks=None, generator=None)``:

    * ``images``: float tensor ``(B, C, H, W)`` (normally ``C = 1``) with values in
      ``[0, 1]``, on any device.
    * ``masks``: long tensor ``(B, H, W)`` of class indices, or ``None``.
    * ``generator``: optional :class:`torch.Generator` for a reproducible draw. It may live
      on the CPU while the images are on CUDA: then the per-sample parameters are drawn on
      the CPU and moved, and the per-pixel noise comes from a device generator seeded from
      it (so the result is still a deterministic function of the generator's state).

    Returns ``(images, masks)``: images of the same shape and dtype, clamped to ``[0, 1]``;
    masks ``(B, H, W)`` long with only values of the input (pixels that come from outside
    the field of view are 0, as are such image pixels), or ``None`` when no masks were given.

    With ``cfg.enabled = False`` the inputs are returned unchanged (the same objects).
    Stages whose ranges are degenerate (e.g. ``gamma = (1, 1)``, ``blur_prob = 0``) are
    skipped, so a configuration with all ranges degenerate is the exact identity.

    Order of operations: geometry (image and mask), then the acquisition model (speckle,
    blur, additive noise), then the display mapping (gamma, contrast, brightness), then a
    clamp to ``[0, 1]``. The module has no parameters and behaves the same in train and
    eval mode.
    """

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else AugmentConfig()
        c = self.cfg
        self._do_geom = c.flip_prob > 0 or not _degenerate(c.scale, 1.0) or c.rotate_deg != 0
        self._do_speckle = c.speckle_prob > 0
        self._do_blur = c.blur_prob > 0 and max(c.blur_sigma) > 0
        self._do_noise = max(c.noise_std) > 0
        self._do_gamma = not _degenerate(c.gamma, 1.0)
        self._do_contrast = not _degenerate(c.contrast, 1.0)
        self._do_bright = c.brightness != 0
        if min(c.gamma) <= 0:
            raise ValueError(f"augment.gamma must be > 0, got {c.gamma}")
        if min(c.scale) <= 0:
            raise ValueError(f"augment.scale must be > 0, got {c.scale}")
        if self._do_speckle and min(c.speckle_looks) <= 0:
            raise ValueError(f"augment.speckle_looks must be > 0, got {c.speckle_looks}")
        if min(c.blur_sigma) < 0 or min(c.noise_std) < 0:
            raise ValueError("augment.blur_sigma and augment.noise_std must be >= 0")

    def extra_repr(self) -> str:
        return repr(self.cfg)

    # ------------------------------------------------------------------ randomness
    def _draw_params(self, batch: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        """All per-sample uniform draws at once: (B, _NPARAMS) on ``device``."""
        gen_device = generator.device if generator is not None else device
        u = torch.rand(batch, _NPARAMS, generator=generator, device=gen_device)
        return u.to(device, non_blocking=True)

    @staticmethod
    def _pixel_generator(device: torch.device, generator: torch.Generator | None) -> torch.Generator | None:
        """Generator for per-pixel noise on ``device`` (derived from ``generator`` if needed)."""
        if generator is None or generator.device == device:
            return generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        derived = torch.Generator(device=device)
        derived.manual_seed(seed)
        return derived

    # ------------------------------------------------------------------ stages
    def _geometry(self, x: Tensor, masks: Tensor | None, u: Tensor) -> tuple[Tensor, Tensor | None]:
        c = self.cfg
        b, _, h, w = x.shape
        flip = torch.where(u[:, _FLIP] < c.flip_prob, -1.0, 1.0)
        scale = _lerp(u[:, _SCALE], c.scale)
        angle = _lerp(u[:, _ROT], (-c.rotate_deg, c.rotate_deg)) * (math.pi / 180.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Output -> input mapping in centred pixel units: M = R(angle) @ diag(flip, 1) / scale.
        # affine_grid works in normalised units (x / (W/2), y / (H/2)), so the off-diagonal
        # terms pick up the aspect ratio; this keeps rotations rigid on non-square images.
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = cos * flip / scale
        theta[:, 0, 1] = -sin / scale * (h / w)
        theta[:, 1, 0] = sin * flip / scale * (w / h)
        theta[:, 1, 1] = cos / scale
        grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if masks is not None:
            m = F.grid_sample(masks.unsqueeze(1).to(grid.dtype), grid, mode="nearest",
                              padding_mode="zeros", align_corners=False)
            masks = m.squeeze(1).round().to(masks.dtype)
        return x, masks

    def _speckle(self, x: Tensor, u: Tensor, gen: torch.Generator | None) -> Tensor:
        c = self.cfg
        b, ch, h, w = x.shape
        looks = _lerp(u[:, _LOOKS], c.speckle_looks)
        conc = looks.view(b, 1, 1, 1).expand(b, ch, h, w).contiguous()
        field = torch._standard_gamma(conc, generator=gen) / looks.view(b, 1, 1, 1)  # mean 1, var 1/L
        on = (u[:, _SPK_ON] < c.speckle_prob).view(b, 1, 1, 1)
        return torch.where(on, x * field, x)

    def _blur(self, x: Tensor, u: Tensor) -> Tensor:
        c = self.cfg
        b, ch, h, w = x.shape
        sigma = _lerp(u[:, _SIGMA], c.blur_sigma)
        sigma = torch.where(u[:, _BLUR_ON] < c.blur_prob, sigma, torch.zeros_like(sigma))
        radius = max(1, math.ceil(3.0 * max(c.blur_sigma)))
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        # sigma = 0 gives exp(-inf) = 0 off-centre and exp(0) = 1 at the centre: a delta kernel.
        s = sigma.clamp_min(1e-6).view(b, 1)
        kernel = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)               # (B, K)
        kernel = kernel.repeat_interleave(ch, dim=0)                    # (B*C, K)
        k = kernel.shape[1]
        y = x.reshape(1, b * ch, h, w)
        # Replicate padding keeps the borders from darkening; the batch acts as channels.
        y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kernel.view(b * ch, 1, 1, k),
                     groups=b * ch)
        y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kernel.view(b * ch, 1, k, 1),
                     groups=b * ch)
        return y.view(b, ch, h, w)

    # ------------------------------------------------------------------ forward
    def forward(
        self, images: Tensor, masks: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if not self.cfg.enabled:
            return images, masks
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        b, _, h, w = images.shape
        if masks is not None:
            if masks.shape != (b, h, w):
                raise ValueError(f"masks must be (B, H, W) = {(b, h, w)}, got {tuple(masks.shape)}")
            if masks.is_floating_point():
                raise ValueError(f"masks must be an integer tensor, got {masks.dtype}")
            masks = masks.to(images.device)
        if b == 0:
            return images, masks

        c = self.cfg
        device = images.device
        x = images.float()
        u = self._draw_params(b, device, generator)
        pixel_gen = self._pixel_generator(device, generator)

        if self._do_geom:
            x, masks = self._geometry(x, masks, u)

        # Acquisition: speckle (frame averaging), PSF blur, detector noise floor.
        if self._do_speckle:
            x = self._speckle(x, u, pixel_gen)
        if self._do_blur:
            x = self._blur(x, u)
        if self._do_noise:
            std = _lerp(u[:, _NOISE], c.noise_std).view(b, 1, 1, 1)
            x = x + std * torch.randn(x.shape, generator=pixel_gen, device=device, dtype=x.dtype)

        # Display mapping: gamma curve, contrast around the image mean, brightness offset.
        if self._do_gamma:
            lo, hi = math.log(c.gamma[0]), math.log(c.gamma[1])
            gamma = torch.exp(_lerp(u[:, _GAMMA], (lo, hi))).view(b, 1, 1, 1)
            x = x.clamp(0.0, 1.0).pow(gamma)
        if self._do_contrast:
            contrast = _lerp(u[:, _CONTRAST], c.contrast).view(b, 1, 1, 1)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * contrast + mean
        if self._do_bright:
            x = x + _lerp(u[:, _BRIGHT], (-c.brightness, c.brightness)).view(b, 1, 1, 1)

        x = x.clamp(0.0, 1.0).to(images.dtype)
        return x, masks
