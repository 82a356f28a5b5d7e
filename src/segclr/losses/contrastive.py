"""Contrastive losses: SimCLR NT-Xent (with a DDP-aware gather) and SimSiam.

References:
    - [SimCLR] T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for Contrastive
      Learning of Visual Representations", ICML 2020, https://arxiv.org/abs/2002.05709
    - [SimSiam] X. Chen, K. He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
      https://arxiv.org/abs/2011.10566

This module imports nothing else from ``segclr`` so it can be lifted into other code unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "gather_with_grad",
    "gather_no_grad",
    "nt_xent",
    "nt_xent_logits",
    "negatives_per_query",
    "NTXentLoss",
    "simsiam_loss",
    "SimSiamLoss",
]


def _distributed_world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient and keeps the local slice.

    Equivalent to ``torch.distributed.nn.functional.all_gather`` + ``torch.cat``, which torch 2.13
    deprecates (pointing at a private module); this uses only stable ``all_gather``/``all_reduce``.
    Embeddings are small, so an all-reduce in backward costs nothing worth a reduce-scatter.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        x = x.contiguous()
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()  # all_reduce is in place; autograd owns `grad`
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks along dim 0 (rank order), keeping the autograd graph.

    Every rank must pass a tensor of the same shape. In backward, the gradients that all ranks'
    losses send to the gathered tensor are summed over ranks and routed to the slice that came from
    the local ``x``, so ``x.grad`` is d(sum over ranks of the losses)/dx (see ``nt_xent`` for why
    that is what DDP's gradient averaging needs). Backward is a collective too: all ranks must call
    it. Without an initialised process group of size > 1, ``x`` is returned unchanged.
    """
    _, world_size = _distributed_world()
    if world_size == 1:
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks along dim 0 without autograd (e.g. integer group ids).

    Same shape contract as ``gather_with_grad``; returns ``x`` unchanged when not distributed.
    """
    _, world_size = _distributed_world()
    if world_size == 1:
        return x
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x)
    return torch.cat(parts, dim=0)


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature <= 0.0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def _check_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    for name, t in zip(names, (a, b)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            raise ValueError(f"{name} must have shape (N, D), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (N, D), "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{names[0]} must have N >= 1 and D >= 1, got {tuple(a.shape)}")


def _l2_normalize(z: Tensor) -> Tensor:
    """Unit-norm rows, computed in at least float32 and safe for huge or tiny magnitudes.

    Dividing by the (detached) per-row max first keeps the squared norm representable; the result
    and its gradient are those of plain ``z / ||z||`` because normalisation is scale invariant.
    """
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    scale = z.detach().abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    return F.normalize(z / scale, dim=1)


def nt_xent_logits(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    groups: Tensor | None = None,
    gather: bool = True,
    slices: tuple[Tensor, Tensor] | None = None,
    window: int = 0,
) -> tuple[Tensor, Tensor]:
    """Masked NT-Xent logits and targets for the local queries; ``nt_xent`` is their cross-entropy.

    Args:
        z1, z2: (N, D) embeddings of the two views; row i of ``z1`` and row i of ``z2`` are a pair.
        temperature: softmax temperature (> 0).
        groups: optional integer (N,) group ids (e.g. volume id). Same-group negatives are masked.
        gather: gather keys from all DDP ranks (no-op when not distributed).
        slices: optional ``(slices1, slices2)``, integer (N,) positions (slice index in the volume)
            of the rows of ``z1`` and ``z2``. With ``groups``, only same-group negatives whose
            position is within ``window`` of the query's are masked (neighbouring slices, the
            false negatives of Ps pairs); farther slices of the same volume stay negatives.
        window: the masking distance used with ``slices`` (>= 0).

    Returns:
        ``(logits, targets)``: logits of shape (2N, 2N') where N' = N * world_size (or N without
        gathering), masked entries set to ``-inf``; targets (2N,) long, the global column of each
        query's positive. Query rows are ``[z1; z2]`` (local); key columns are
        ``[z1 of rank 0, ..., z1 of rank W-1; z2 of rank 0, ..., z2 of rank W-1]``.
    """
    _check_pair(z1, z2, ("z1", "z2"))
    temperature = _check_temperature(temperature)
    n = z1.shape[0]
    if groups is not None:
        if not isinstance(groups, Tensor) or groups.shape != (n,):
            shape = tuple(groups.shape) if isinstance(groups, Tensor) else type(groups).__name__
            raise ValueError(f"groups must have shape (N,) = ({n},), got {shape}")
        if groups.is_floating_point() or groups.is_complex() or groups.dtype == torch.bool:
            raise ValueError(f"groups must be an integer tensor, got dtype {groups.dtype}")
    if slices is not None:
        if groups is None:
            raise ValueError("slices need groups: positions are compared only within a group")
        if len(slices) != 2 or any(not isinstance(t, Tensor) or t.shape != (n,) for t in slices):
            raise ValueError(f"slices must be two integer tensors of shape (N,) = ({n},)")
        if any(t.is_floating_point() or t.dtype == torch.bool for t in slices):
            raise ValueError("slices must be integer tensors")
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ValueError(f"window must be an integer >= 0, got {window!r}")

    q1, q2 = _l2_normalize(z1), _l2_normalize(z2)
    rank, world_size = _distributed_world() if gather else (0, 1)
    k1, k2 = (gather_with_grad(q1), gather_with_grad(q2)) if world_size > 1 else (q1, q2)
    n_global = k1.shape[0]

    queries = torch.cat([q1, q2], dim=0)  # (2N, D)
    keys = torch.cat([k1, k2], dim=0)  # (2N', D)
    # Keep the similarities in float32 under autocast: 1/t amplifies half-precision rounding.
    with torch.autocast(device_type=queries.device.type, enabled=False):
        logits = queries @ keys.T / temperature  # (2N, 2N')

    device = logits.device
    local = torch.arange(n, device=device) + rank * n  # global index of each local pair
    self_col = torch.cat([local, local + n_global])
    targets = torch.cat([local + n_global, local])
    rows = torch.arange(2 * n, device=device)

    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[rows, self_col] = True
    if groups is not None:
        g_keys = gather_no_grad(groups.to(device)) if world_size > 1 else groups.to(device)
        g_q, g_k = groups.to(device).repeat(2), g_keys.repeat(2)
        same = g_q[:, None] == g_k[None, :]
        if slices is not None:
            s1, s2 = (t.to(device) for t in slices)
            k1s, k2s = (gather_no_grad(s1), gather_no_grad(s2)) if world_size > 1 else (s1, s2)
            s_q, s_k = torch.cat([s1, s2]), torch.cat([k1s, k2s])
            same &= (s_q[:, None] - s_k[None, :]).abs() <= window
        mask |= same
        mask[rows, targets] = False  # the positive always stays
    # -inf is exact: softmax gives the masked entries weight 0 and gradient 0; every row keeps at
    # least its positive, so the log-sum-exp stays finite. A row with no negative left has loss 0
    # and no gradient: ``negatives_per_query`` lets callers detect it.
    logits = logits.masked_fill(mask, float("-inf"))
    return logits, targets


def negatives_per_query(logits: Tensor) -> Tensor:
    """Number of negatives left in each row of ``nt_xent_logits``' logits (unmasked keys - positive)."""
    return torch.isfinite(logits).sum(dim=1) - 1


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    groups: Tensor | None = None,
    gather: bool = True,
    slices: tuple[Tensor, Tensor] | None = None,
    window: int = 0,
) -> Tensor:
    """SimCLR NT-Xent loss (Chen et al. 2020, https://arxiv.org/abs/2002.05709).

    For each of the 2N' embeddings u (N' pairs in the global batch) with positive partner v:

        l(u) = -log( exp(cos(u, v)/t) / sum_{w != u} exp(cos(u, w)/t) )

    and the loss is the mean of l over all 2N' embeddings. It is computed as cross-entropy over
    masked logits (log-sum-exp), which stays finite at small temperatures where the naive ratio of
    exponentials overflows.

    Distributed: with an initialised process group (world size W > 1) and ``gather=True``, the
    normalised embeddings of all ranks are gathered (with gradient) as keys; the local 2N rows are
    the queries, their self/positive columns offset by ``rank * N``. Each rank returns the mean over
    its own 2N queries, so the mean of the per-rank losses equals the single-process loss on the
    global batch. In backward the gather sums every rank's contribution into the local embeddings'
    gradient, which is W times the gradient of that global loss; DDP's averaging of parameter
    gradients over W ranks then yields exactly the global gradient. All ranks must hold the same N
    (e.g. ``drop_last=True``) and all must call backward.

    Args:
        z1: (N, D) embeddings of the first view (any scale; rows are L2-normalised here).
        z2: (N, D) embeddings of the second view; ``(z1[i], z2[i])`` is a positive pair.
        temperature: t > 0 (default 0.1).
        groups: optional integer (N,) ids, e.g. volume id. Negatives sharing the query's
            group (other than its positive) are dropped from the denominator, since for
            neighbouring-slice pairs they would be false negatives. Leave it None for Pa pairs.
        slices, window: restrict that masking to same-group negatives within ``window`` slices
            (see ``nt_xent_logits``).
        gather: use negatives from all DDP ranks (ignored when not distributed).

    Returns:
        Scalar loss tensor (float32, or float64 for float64 inputs).

    Example:
        >>> z1, z2 = torch.randn(8, 128), torch.randn(8, 128)
        >>> loss = nt_xent(z1, z2, temperature=0.1)
        >>> loss.shape
        torch.Size([])
    """
    logits, targets = nt_xent_logits(z1, z2, temperature=temperature, groups=groups, gather=gather,
                                     slices=slices, window=window)
    return F.cross_entropy(logits, targets)


class NTXentLoss(nn.Module):
    """Module form of ``nt_xent``: ``NTXentLoss(temperature)(z1, z2, groups=None)``.

    Args:
        temperature: t > 0 (default 0.1); validated here with a ``ValueError``.
        gather: gather negatives across DDP ranks (no-op when not distributed).

    Example:
        >>> loss_fn = NTXentLoss(temperature=0.1)
        >>> loss = loss_fn(torch.randn(8, 128), torch.randn(8, 128))
    """

    def __init__(self, temperature: float = 0.1, gather: bool = True) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.gather = bool(gather)

    def forward(self, z1: Tensor, z2: Tensor, groups: Tensor | None = None,
                slices: tuple[Tensor, Tensor] | None = None, window: int = 0) -> Tensor:
        return nt_xent(z1, z2, temperature=self.temperature, groups=groups, gather=self.gather, slices=slices,
                       window=window)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather={self.gather}"


def _negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    # The target branch is a constant (stop-gradient): SimSiam's collapse-preventing ingredient.
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """SimSiam loss (Chen & He 2021, https://arxiv.org/abs/2011.10566).

        L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,   D(p, z) = -mean_i cos(p_i, z_i)

    Args:
        p1, p2: (N, D) predictor outputs of view 1 and view 2.
        z1, z2: (N, D) projector outputs (targets) of view 1 and view 2; no gradient flows into
            them through this loss.

    Returns:
        Scalar in [-1, 1]; -1 when each prediction is aligned with the other view's target.

    Example:
        >>> p1, p2, z1, z2 = (torch.randn(8, 64) for _ in range(4))
        >>> loss = simsiam_loss(p1, p2, z1, z2)
    """
    _check_pair(p1, p2, ("p1", "p2"))
    _check_pair(z1, z2, ("z1", "z2"))
    _check_pair(p1, z1, ("p1", "z1"))
    return 0.5 * _negative_cosine(p1, z2) + 0.5 * _negative_cosine(p2, z1)


class SimSiamLoss(nn.Module):
    """Module form of ``simsiam_loss``: ``SimSiamLoss()(p1, p2, z1, z2)``."""

    def forward(self, p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
        return simsiam_loss(p1, p2, z1, z2)
