"""SVDNA: restyle labeled source B-scans toward unlabeled target B-scans (singular value noise transfer).

Written from the description in V. Koch et al., "Noise transfer for unsupervised domain adaptation of
retinal OCT images", MICCAI 2022 (arXiv:2209.08097); no code of theirs is used. For a source crop
``xs`` and a target crop ``xt`` of the same size, with singular value decompositions
``xs = sum_i s_i u_i v_i^T`` and ``xt = sum_i t_i p_i q_i^T`` (values in decreasing order)::

    restyled = sum_{i < k} s_i u_i v_i^T  +  sum_{i >= k} t_i p_i q_i^T

The leading ``k`` components carry the source's content (layers, fluid), the target's trailing
components its noise texture (speckle, noise floor). The result then takes the target crop's
histogram (exact matching by rank: the restyled crop's j-th smallest pixel gets the target's j-th
smallest value). The mask is untouched: restyling moves no pixel.

Here it runs on the training device on whole batches: one batched ``torch.linalg.svd`` over the
labeled crops and the target crops of the step, which come from the unlabeled target stream the
datamodule builds for the SVDNA modes (``RunConfig.unlabeled_domains``: target-train patients only,
never test patients). Per crop, a coin with ``svdna.prob`` decides whether it is restyled, ``k`` is
drawn uniformly from ``svdna.k`` (inclusive, clipped to the crop's rank) and the target crop is drawn
uniformly from the step's target crops. These defaults are ours, not the paper's.

Computed as ``xs + (target tail - source tail)``, so ``k`` at the full rank gives back ``xs``
exactly (before the histogram step) and ``k = 0`` gives ``xt`` up to rounding.

Example::

    >>> import torch
    >>> src, tgt = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    >>> out = svdna_restyle(src, tgt, torch.tensor([0, 8, 16, 32]), histogram=False)
    >>> bool(torch.equal(out[3], src[3])), bool(torch.allclose(out[0], tgt[0], atol=1e-5))
    (True, True)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segclr.config import SVDNA_MODES, RunConfig, SVDNAConfig

__all__ = ["SVDNARestyle", "build_restyle", "restyled_labeled", "svdna_restyle"]


@torch.no_grad()
def svdna_restyle(source: Tensor, target: Tensor, k: Tensor, histogram: bool = True) -> Tensor:
    """Restyle ``source`` (B, C, H, W) toward ``target`` (same shape) keeping ``k[b]`` source components.

    ``k`` is an integer tensor (B,); values at or above ``min(H, W)`` keep the whole source.
    Returns a float tensor of the source's shape and dtype, clamped to [0, 1].
    """
    if source.shape != target.shape or source.dim() != 4:
        raise ValueError(f"source and target must be (B, C, H, W) of one shape, got {tuple(source.shape)} "
                         f"and {tuple(target.shape)}")
    b, c, h, w = source.shape
    if b == 0:
        return source
    xs = source.float().reshape(b * c, h, w)
    xt = target.to(xs.device).float().reshape(b * c, h, w)
    u, s, vh = torch.linalg.svd(torch.cat([xs, xt]), full_matrices=False)
    rank = s.shape[-1]
    keep = k.to(xs.device).long().repeat_interleave(c).view(-1, 1)
    tail = (torch.arange(rank, device=xs.device).view(1, -1) >= keep).to(s.dtype)   # (B*C, rank)
    tails = (u * (s * torch.cat([tail, tail])).unsqueeze(-2)) @ vh                  # components i >= k
    out = xs + (tails[b * c:] - tails[:b * c])
    if histogram:
        flat = out.reshape(b * c, -1)
        ranks = flat.argsort(dim=1)
        values = xt.reshape(b * c, -1).sort(dim=1).values
        out = torch.empty_like(flat).scatter_(1, ranks, values)
    return out.reshape(b, c, h, w).clamp(0.0, 1.0).to(source.dtype)


class SVDNARestyle(nn.Module):
    """Randomly restyles a batch of labeled crops toward a pool of target crops (no parameters).

    Call ``restyle(images, targets, generator=None)``: ``images`` (B, C, H, W) in [0, 1], ``targets``
    (T, C, H, W) on any device. Per image a coin with ``cfg.prob``, a ``k`` from ``cfg.k`` and a target
    are drawn (from ``generator`` if given, on its device, like :class:`~segclr.data.augment.BatchAugment`);
    images whose coin says no come back bit for bit.
    """

    def __init__(self, cfg: SVDNAConfig, target_domains: list[str]) -> None:
        super().__init__()
        self.cfg = cfg
        self.target_domains = list(target_domains)

    def extra_repr(self) -> str:
        return f"{self.cfg!r}, targets={self.target_domains}"

    @torch.no_grad()
    def forward(self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b = len(images)
        if b == 0 or self.cfg.prob <= 0:
            return images
        if len(targets) == 0:
            raise ValueError("SVDNA needs target B-scans to restyle toward, got none")
        gen_device = generator.device if generator is not None else images.device
        lo, hi = self.cfg.k
        coin = torch.rand(b, generator=generator, device=gen_device) < self.cfg.prob
        k = torch.randint(lo, hi + 1, (b,), generator=generator, device=gen_device)
        pick = torch.randint(0, len(targets), (b,), generator=generator, device=gen_device)
        restyled = svdna_restyle(images, targets[pick.to(targets.device)].to(images.device), k, self.cfg.histogram)
        return torch.where(coin.to(images.device).view(b, *([1] * (images.dim() - 1))), restyled, images)

    def labeled(self, batch: dict, augment: nn.Module | None = None) -> dict:
        """``batch["labeled"]`` with its images restyled toward the step's target crops (``view1`` of each
        target domain's stream); the mask tensor is passed on as it is. The draws use ``augment``'s
        generator when it has one (the training module's per-step seeded one)."""
        missing = [d for d in self.target_domains if d not in batch]
        if missing:
            raise KeyError(f"SVDNA: the step has no target stream for {', '.join(missing)}")
        targets = torch.cat([batch[d]["view1"] for d in self.target_domains])
        lab = batch["labeled"]
        return {**lab, "image": self(lab["image"], targets, getattr(augment, "generator", None))}


def build_restyle(cfg: RunConfig) -> SVDNARestyle | None:
    """The restyler of an SVDNA mode (targets: the target domains that feed a stream), else None."""
    if cfg.objective.mode not in SVDNA_MODES:
        return None
    targets = [d for d in cfg.data.target_domains if d in cfg.unlabeled_domains and d != cfg.data.source_domain]
    return SVDNARestyle(cfg.svdna, targets)


def restyled_labeled(restyle: SVDNARestyle | None, batch: dict, augment: nn.Module | None = None) -> dict:
    """The step's labeled batch, restyled when the mode is an SVDNA one (``restyle`` not None)."""
    return batch["labeled"] if restyle is None else restyle.labeled(batch, augment)
