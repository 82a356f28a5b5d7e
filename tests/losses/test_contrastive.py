"""NT-Xent and SimSiam against independent references and their contracts."""

from __future__ import annotations

import math

import pytest
import torch

from segclr.losses import NTXentLoss, SimSiamLoss, nt_xent, nt_xent_logits, simsiam_loss


def reference_nt_xent(z1, z2, temperature, groups=None):
    """Plain double loop in float64: mean over the 2N embeddings of -log(pos / sum_{k != i})."""
    z = torch.cat([z1, z2]).double()
    z = [row / row.norm() for row in z]
    n = len(z1)
    g = None if groups is None else [int(x) for x in groups] * 2
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        s_pos = float(z[i] @ z[pos]) / temperature
        denom = 0.0
        for k in range(2 * n):
            if k == i:
                continue
            if g is not None and k != pos and g[k] == g[i]:
                continue
            denom += math.exp(float(z[i] @ z[k]) / temperature)
        total += -math.log(math.exp(s_pos) / denom)
    return total / (2 * n)


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("with_groups", [False, True])
def test_nt_xent_matches_reference(n, d, temperature, with_groups):
    gen = torch.Generator().manual_seed(1000 * n + d)
    z1 = torch.randn(n, d, generator=gen)
    z2 = torch.randn(n, d, generator=gen)
    groups = torch.arange(n) // 2 if with_groups else None
    expected = reference_nt_xent(z1, z2, temperature, groups)
    got = nt_xent(z1, z2, temperature=temperature, groups=groups)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    got64 = nt_xent(z1.double(), z2.double(), temperature=temperature, groups=groups)
    assert got64.item() == pytest.approx(expected, rel=1e-10, abs=1e-10)
    assert NTXentLoss(temperature)(z1, z2, groups).item() == pytest.approx(got.item())


def test_groups_all_distinct_is_plain_nt_xent():
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    assert torch.allclose(nt_xent(z1, z2, groups=torch.arange(6)), nt_xent(z1, z2))


def test_single_group_leaves_only_positive():
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    loss = nt_xent(z1, z2, groups=torch.zeros(4, dtype=torch.long))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_logits_layout():
    n = 5
    logits, targets = nt_xent_logits(torch.randn(n, 8), torch.randn(n, 8))
    assert logits.shape == (2 * n, 2 * n)
    assert torch.equal(targets, torch.cat([torch.arange(n) + n, torch.arange(n)]))
    assert torch.isinf(logits.diagonal()).all()
    assert (torch.isfinite(logits).sum(dim=1) == 2 * n - 1).all()


def test_stable_at_low_temperature_with_large_inputs():
    gen = torch.Generator().manual_seed(0)
    z1 = 1e6 * torch.randn(16, 32, generator=gen)
    z2 = z1 + 1e5 * torch.randn(16, 32, generator=gen)
    # exp(1 / 0.01) = exp(100) overflows float32: the naive ratio would be inf / inf.
    assert math.isinf(torch.tensor(100.0).exp().item())
    z1.requires_grad_(True)
    loss = nt_xent(z1, z2, temperature=0.01)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z1.grad).all()
    # Scale invariance, not just finiteness: the rows are normalised, so scaling both views by s
    # leaves the loss unchanged. At s = 1e30 the squared norms overflow float32 and at s = 1e-30
    # they underflow; only the per-row max-rescaling in _l2_normalize survives both.
    expected = reference_nt_xent(z1.detach(), z2, 0.01)
    assert loss.item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    for scale in (1e30, 1e-30, 1e-20, 1e20):
        scaled = nt_xent(scale * z1.detach(), scale * z2, temperature=0.01)
        assert scaled.item() == pytest.approx(loss.item(), rel=1e-4, abs=1e-6), scale


@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1.0, 1e6, 1e30])
def test_scale_invariance_with_unit_scale_inputs(scale):
    # Well-separated random embeddings, where the loss is far from its constant-embedding value
    # log(2N - 1): a normalisation that collapses rows to zero (overflow or underflow) shows.
    gen = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    base = nt_xent(z1, 0.5 * z1 + z2, temperature=0.1)
    assert abs(base.item() - math.log(11)) > 0.1
    x1 = z1.clone().requires_grad_(True)
    got = nt_xent(scale * x1, scale * (0.5 * z1 + z2), temperature=0.1)
    assert got.item() == pytest.approx(base.item(), rel=1e-5)
    # d/dz L(s z) = s L'(s z) = L'(z): the gradient with respect to the unscaled input is unchanged
    y1 = z1.clone().requires_grad_(True)
    nt_xent(y1, 0.5 * z1 + z2, temperature=0.1).backward()
    got.backward()
    torch.testing.assert_close(x1.grad, y1.grad, rtol=1e-4, atol=1e-6)
    y1, y2 = z1.double(), (0.5 * z1 + z2).double()
    got64 = nt_xent(scale * y1, scale * y2, temperature=0.1)
    assert got64.item() == pytest.approx(reference_nt_xent(y1, y2, 0.1), rel=1e-9)


def test_invariant_to_input_scale():
    z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    base = nt_xent(z1, z2)
    scales = torch.tensor([0.01, 3.0, 1000.0, 0.5, 7.0, 1.0, 2.0, 1e4])[:, None]
    assert torch.allclose(nt_xent(z1 * scales, 5.0 * z2), base, atol=1e-5)


def test_aligned_pairs_lower_than_random():
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(32, 64, generator=gen)
    aligned = nt_xent(z1, z1 + 0.05 * torch.randn(32, 64, generator=gen))
    random = nt_xent(z1, torch.randn(32, 64, generator=gen))
    assert aligned < random


def test_gradient_reaches_both_views():
    z1 = torch.randn(6, 8, requires_grad=True)
    z2 = torch.randn(6, 8, requires_grad=True)
    nt_xent(z1, z2).backward()
    for z in (z1, z2):
        assert z.grad is not None and z.grad.abs().sum() > 0


def test_autocast_keeps_float32_logits():
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits, _ = nt_xent_logits(z1.bfloat16(), z2.bfloat16())
    assert logits.dtype == torch.float32


@pytest.mark.parametrize(
    "z1, z2, match",
    [
        (torch.randn(4), torch.randn(4), r"z1 must have shape \(N, D\)"),
        (torch.randn(4, 8), torch.randn(4, 8, 1), r"z2 must have shape \(N, D\)"),
        (torch.randn(4, 8), torch.randn(3, 8), "same shape"),
        (torch.randn(4, 8), torch.randn(4, 7), "same shape"),
        (torch.randn(0, 8), torch.randn(0, 8), "N >= 1"),
        (torch.ones(4, 8, dtype=torch.long), torch.ones(4, 8, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_shapes_raise(z1, z2, match):
    with pytest.raises(ValueError, match=match):
        nt_xent(z1, z2)


@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=temperature)
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        NTXentLoss(temperature=temperature)


@pytest.mark.parametrize(
    "groups, match",
    [
        (torch.arange(3), r"groups must have shape \(N,\)"),
        (torch.zeros(4, 1, dtype=torch.long), r"groups must have shape \(N,\)"),
        (torch.zeros(4), "integer tensor"),
    ],
)
def test_bad_groups_raise(groups, match):
    with pytest.raises(ValueError, match=match):
        nt_xent(torch.randn(4, 8), torch.randn(4, 8), groups=groups)


def test_simsiam_matches_formula():
    p1, p2, z1, z2 = (torch.randn(5, 16) for _ in range(4))
    cos = torch.nn.functional.cosine_similarity
    expected = -0.5 * cos(p1, z2).mean() - 0.5 * cos(p2, z1).mean()
    assert torch.allclose(simsiam_loss(p1, p2, z1, z2), expected)
    assert torch.allclose(SimSiamLoss()(p1, p2, z1, z2), expected)


def test_simsiam_minus_one_when_aligned():
    z1, z2 = torch.randn(5, 16), torch.randn(5, 16)
    # p1 predicts z2, p2 predicts z1 (scale does not matter).
    assert simsiam_loss(3.0 * z2, z1, z1, z2).item() == pytest.approx(-1.0, abs=1e-6)


def test_simsiam_stop_gradient():
    p1, p2, z1, z2 = (torch.randn(5, 16, requires_grad=True) for _ in range(4))
    loss = simsiam_loss(p1, p2, z1, z2)
    g_p1, g_p2, g_z1, g_z2 = torch.autograd.grad(loss, [p1, p2, z1, z2], allow_unused=True)
    assert g_z1 is None and g_z2 is None
    assert g_p1.abs().sum() > 0 and g_p2.abs().sum() > 0


def test_simsiam_bad_shapes_raise():
    with pytest.raises(ValueError, match="same shape"):
        simsiam_loss(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 9), torch.randn(4, 9))
    with pytest.raises(ValueError, match=r"p1 must have shape \(N, D\)"):
        simsiam_loss(torch.randn(8), torch.randn(8), torch.randn(8), torch.randn(8))


# --------------------------------------------------------------------------- defaults and messages
def test_mixed_row_scales_in_one_batch():
    # the max-rescaling is per row: one huge and one tiny row in the same batch must both survive
    gen = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    scales = torch.tensor([1e30, 1e-30, 1.0, 1e20, 1e-20, 3.0])[:, None]
    base = nt_xent(z1, z2)
    assert nt_xent(z1 * scales, z2 * scales.flip(0)).item() == pytest.approx(base.item(), rel=1e-5)


def test_defaults():
    gen = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    expected = reference_nt_xent(z1, z2, 0.1)
    assert nt_xent(z1, z2).item() == pytest.approx(expected, rel=1e-5)
    assert NTXentLoss()(z1, z2).item() == pytest.approx(expected, rel=1e-5)
    logits, _ = nt_xent_logits(z1, z2)
    cos = torch.nn.functional.cosine_similarity(z1[0], z2[0], dim=0)
    assert logits[0, 5].item() == pytest.approx(cos.item() / 0.1, rel=1e-5)
    loss_fn = NTXentLoss()
    assert loss_fn.temperature == 0.1 and loss_fn.gather is True
    assert NTXentLoss(0.5, gather=False).gather is False and NTXentLoss(0.5, gather=0).gather is False
    assert loss_fn.extra_repr() == "temperature=0.1, gather=True"


@pytest.mark.parametrize(
    "z1, z2, match",
    [
        ([[1.0, 2.0]], torch.randn(1, 2), r"^z1 must be a torch\.Tensor, got list$"),
        (torch.randn(1, 2), (1.0, 2.0), r"^z2 must be a torch\.Tensor, got tuple$"),
        (torch.randn(4, 8), torch.randn(3, 8),
         r"^z1 and z2 must have the same shape \(N, D\), got \(4, 8\) and \(3, 8\)$"),
        (torch.randn(4, 0), torch.randn(4, 0), r"^z1 must have N >= 1 and D >= 1, got \(4, 0\)$"),
        (torch.randn(0, 3), torch.randn(0, 3), r"^z1 must have N >= 1 and D >= 1, got \(0, 3\)$"),
    ],
)
def test_bad_inputs_exact_messages(z1, z2, match):
    with pytest.raises(ValueError, match=match):
        nt_xent(z1, z2)


def test_bad_groups_exact_messages():
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"^groups must have shape \(N,\) = \(4,\), got \(3,\)$"):
        nt_xent(z, z, groups=torch.arange(3))
    with pytest.raises(ValueError, match=r"^groups must have shape \(N,\) = \(4,\), got list$"):
        nt_xent(z, z, groups=[0, 1, 2, 3])
    for dtype in (torch.bool, torch.float32, torch.complex64):
        with pytest.raises(ValueError, match=rf"^groups must be an integer tensor, got dtype {dtype}$"):
            nt_xent(z, z, groups=torch.zeros(4, dtype=dtype))
    for dtype in (torch.int32, torch.int64, torch.uint8):
        assert torch.isfinite(nt_xent(z, z + 0.1, groups=torch.tensor([0, 1, 2, 3], dtype=dtype)))


def test_simsiam_names_the_bad_argument():
    ok = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"^p2 must have shape \(N, D\)"):
        simsiam_loss(ok, torch.randn(8), ok, ok)
    with pytest.raises(ValueError, match=r"^z1 and z2 must have the same shape"):
        simsiam_loss(ok, ok, ok, torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"^p1 and z1 must have the same shape"):
        simsiam_loss(ok, ok, torch.randn(4, 7), torch.randn(4, 7))


# --------------------------------------------------------------------------- a simulated 2-rank world
# test_distributed.py runs real 2-process DDP; these run rank 0 and rank 1 of a 2-process world in
# this process (a stand-in for torch.distributed), so the rank offsets, the gathers and the local
# gradient slice are checked without spawning anything.
class _FakeDist:
    class ReduceOp:
        SUM = "sum"

    def __init__(self, rank: int, per_rank: dict[str, list[torch.Tensor]]) -> None:
        self.rank, self.per_rank = rank, per_rank

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_rank(self):
        return self.rank

    def get_world_size(self):
        return 2

    def all_gather(self, parts, x):
        assert len(parts) == 2
        for values in self.per_rank.values():
            mine = values[self.rank]
            if mine.shape == x.shape and mine.dtype == x.dtype and torch.equal(mine, x.detach()):
                for part, value in zip(parts, values):
                    part.copy_(value)
                return
        raise AssertionError(f"gather of an unexpected tensor {tuple(x.shape)}")

    def all_reduce(self, tensor, op=ReduceOp.SUM):
        assert isinstance(tensor, torch.Tensor)
        assert op == self.ReduceOp.SUM  # the other rank contributes nothing to this rank's backward here


def _two_rank_batch(n=3, d=8, seed=6):
    gen = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(2 * n, d, generator=gen, dtype=torch.float64), torch.randn(2 * n, d, generator=gen,
                                                                                      dtype=torch.float64)
    groups = torch.tensor([0, 1, 2, 1, 3, 4])[: 2 * n] + 10   # group 1 straddles the ranks
    return z1, z2, groups


def _as_rank(monkeypatch, rank, z1, z2, groups=None, extra=None):
    from segclr.losses import contrastive

    n = z1.shape[0] // 2
    local = slice(rank * n, (rank + 1) * n)
    norm = contrastive._l2_normalize
    per_rank = {"q1": [norm(z1[:n]), norm(z1[n:])], "q2": [norm(z2[:n]), norm(z2[n:])]}
    if groups is not None:
        per_rank["groups"] = [groups[:n], groups[n:]]
    for name, t in (extra or {}).items():
        per_rank[name] = [t[:n], t[n:]]
    monkeypatch.setattr(contrastive, "dist", _FakeDist(rank, per_rank))
    return local


@pytest.mark.parametrize("with_groups", [False, True])
def test_two_ranks_reproduce_the_global_loss(monkeypatch, with_groups):
    z1, z2, groups = _two_rank_batch()
    g = groups if with_groups else None
    expected = reference_nt_xent(z1, z2, 0.1, g)
    losses = []
    for rank in (0, 1):
        local = _as_rank(monkeypatch, rank, z1, z2, g)
        lg = None if g is None else g[local]
        logits, targets = nt_xent_logits(z1[local], z2[local], groups=lg)
        n, n_global = 3, 6
        idx = torch.arange(n) + rank * n
        assert logits.shape == (2 * n, 2 * n_global)
        assert torch.equal(targets, torch.cat([idx + n_global, idx]))
        assert torch.isinf(logits[torch.arange(2 * n), torch.cat([idx, idx + n_global])]).all()  # self
        assert torch.isfinite(logits[torch.arange(2 * n), targets]).all()  # the positive
        losses.append(nt_xent(z1[local], z2[local], groups=lg))
        assert NTXentLoss()(z1[local], z2[local], lg).item() == pytest.approx(losses[-1].item())
        # gather=False: only the local pairs, whatever the world size
        alone = reference_nt_xent(z1[local], z2[local], 0.1, lg)
        assert nt_xent(z1[local], z2[local], groups=lg, gather=False).item() == pytest.approx(alone, rel=1e-9)
        assert NTXentLoss(gather=False)(z1[local], z2[local], lg).item() == pytest.approx(alone, rel=1e-9)
    assert (sum(losses) / 2).item() == pytest.approx(expected, rel=1e-9)


def test_two_ranks_slice_masking_uses_gathered_positions(monkeypatch):
    import inspect

    if "slices" not in inspect.signature(nt_xent_logits).parameters:
        pytest.skip("no slice-window masking in this version")
    z1, z2, groups = _two_rank_batch()
    groups = torch.full((6,), 7)
    s1, s2 = torch.tensor([0, 4, 8, 1, 5, 9]) + 100, torch.tensor([1, 5, 9, 2, 6, 10]) + 100
    full, full_t = nt_xent_logits(z1, z2, groups=groups, slices=(s1, s2), window=1, gather=False)
    for rank in (0, 1):
        local = _as_rank(monkeypatch, rank, z1, z2, groups, {"s1": s1, "s2": s2})
        logits, targets = nt_xent_logits(z1[local], z2[local], groups=groups[local],
                                         slices=(s1[local], s2[local]), window=1)
        rows = torch.cat([torch.arange(3) + 3 * rank, torch.arange(3) + 3 * rank + 6])
        # rank r's rows are rows of the single-process logits
        assert torch.equal(torch.isinf(logits), torch.isinf(full[rows]))
        torch.testing.assert_close(logits[torch.isfinite(logits)], full[rows][torch.isfinite(full[rows])])
        assert torch.equal(targets, full_t[rows])


def test_two_ranks_local_gradient(monkeypatch):
    # With the other rank's backward contributing nothing, the gradient of rank r's loss with
    # respect to its own embeddings is the plain autograd gradient of that loss with the other
    # rank's (normalised) embeddings held constant.
    z1, z2, groups = _two_rank_batch()
    for rank in (0, 1):
        local = _as_rank(monkeypatch, rank, z1, z2, groups)
        x1, x2 = z1[local].clone().requires_grad_(True), z2[local].clone().requires_grad_(True)
        nt_xent(x1, x2, groups=groups[local]).backward()

        y1, y2 = z1[local].clone().requires_grad_(True), z2[local].clone().requires_grad_(True)
        unit = torch.nn.functional.normalize
        k1 = [unit(y1, dim=1) if r == rank else unit(z1[r * 3:(r + 1) * 3], dim=1) for r in (0, 1)]
        k2 = [unit(y2, dim=1) if r == rank else unit(z2[r * 3:(r + 1) * 3], dim=1) for r in (0, 1)]
        q = torch.cat([unit(y1, dim=1), unit(y2, dim=1)])
        k = torch.cat(k1 + k2)
        logits = q @ k.T / 0.1
        idx = torch.arange(3) + 3 * rank
        targets = torch.cat([idx + 6, idx])
        g_q, g_k = groups[local].repeat(2), groups.repeat(2)
        mask = g_q[:, None] == g_k[None, :]
        mask[torch.arange(6), torch.cat([idx, idx + 6])] = True
        mask[torch.arange(6), targets] = False
        torch.nn.functional.cross_entropy(logits.masked_fill(mask, float("-inf")), targets).backward()
        torch.testing.assert_close(x1.grad, y1.grad)
        torch.testing.assert_close(x2.grad, y2.grad)


def _has_slices():
    import inspect

    return "slices" in inspect.signature(nt_xent_logits).parameters


@pytest.mark.skipif(not _has_slices(), reason="no slice-window masking in this version")
def test_slice_window_defaults_to_zero_and_bad_slices_are_named():
    gen = torch.Generator().manual_seed(8)
    z1, z2 = torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen)
    g = torch.zeros(4, dtype=torch.long)
    s1, s2 = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4])
    assert nt_xent(z1, z2, groups=g, slices=(s1, s2)).item() == pytest.approx(
        nt_xent(z1, z2, groups=g, slices=(s1, s2), window=0).item())
    assert nt_xent(z1, z2, groups=g, slices=(s1, s2)).item() != pytest.approx(
        nt_xent(z1, z2, groups=g, slices=(s1, s2), window=1).item())
    logits, _ = nt_xent_logits(z1, z2, groups=g, slices=(s1, s2))
    assert torch.equal(torch.isinf(logits), torch.isinf(nt_xent_logits(z1, z2, groups=g, slices=(s1, s2), window=0)[0]))
    with pytest.raises(ValueError, match=r"^slices need groups: positions are compared only within a group$"):
        nt_xent(z1, z2, slices=(s1, s2))
    for bad in (s1.float(), s1 > 1):
        with pytest.raises(ValueError, match=r"^slices must be integer tensors$"):
            nt_xent(z1, z2, groups=g, slices=(s1, bad))
    for window in (True, 1.5, -1):
        with pytest.raises(ValueError, match=r"^window must be an integer >= 0, got "):
            nt_xent(z1, z2, groups=g, slices=(s1, s2), window=window)
