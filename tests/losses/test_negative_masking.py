"""Which negatives NT-Xent keeps: all of them for Pa, all but near slices of the same volume for Ps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segclr.losses import negatives_per_query, nt_xent, nt_xent_logits


def _z(n: int = 6, d: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def test_without_groups_every_other_embedding_is_a_negative():
    z1, z2 = _z()
    logits, _ = nt_xent_logits(z1, z2)
    assert negatives_per_query(logits).tolist() == [2 * 6 - 2] * 12


def test_one_group_masks_every_negative_and_leaves_a_zero_loss():
    # the old behaviour for Pa with one target patient: nothing to contrast, loss exactly 0
    z1, z2 = _z()
    groups = torch.zeros(6, dtype=torch.long)
    logits, _ = nt_xent_logits(z1, z2, groups=groups)
    assert negatives_per_query(logits).max() == 0
    assert nt_xent(z1, z2, groups=groups).item() == pytest.approx(0.0, abs=1e-6)


def test_slices_mask_only_neighbours_of_the_same_volume():
    z1, z2 = _z()
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    s1 = torch.tensor([0, 1, 5, 9, 0, 6])
    s2 = torch.tensor([1, 2, 4, 10, 2, 7])
    logits, targets = nt_xent_logits(z1, z2, groups=groups, slices=(s1, s2), window=2)
    g = torch.cat([groups, groups])
    s = torch.cat([s1, s2])
    expected = (g[:, None] == g[None, :]) & ((s[:, None] - s[None, :]).abs() <= 2)
    expected[torch.arange(12), torch.arange(12)] = True  # self
    expected[torch.arange(12), targets] = False  # the positive stays
    assert torch.equal(torch.isinf(logits), expected)
    # query 0 (volume 0, slice 0): its neighbours 1 and 2 (rows 1, 7) go, slices 4-10 of volume 0 stay
    assert negatives_per_query(logits)[0] == 12 - 2 - 2
    # window 0: nothing but identical positions is masked
    logits0, _ = nt_xent_logits(z1, z2, groups=groups, slices=(s1, s2), window=0)
    assert negatives_per_query(logits0).min() >= 12 - 2 - 1


def test_masked_loss_equals_hand_computation():
    z1, z2 = _z(4, 8, seed=3)
    groups = torch.tensor([0, 0, 1, 1])
    s1, s2 = torch.tensor([0, 5, 0, 1]), torch.tensor([1, 6, 1, 2])
    loss = nt_xent(z1, z2, temperature=0.5, groups=groups, slices=(s1, s2), window=1)
    q = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = q @ q.T / 0.5
    g, s = groups.repeat(2), torch.cat([s1, s2])
    total = 0.0
    for i in range(8):
        pos = (i + 4) % 8
        keep = [j for j in range(8) if j != i and (j == pos or not (g[i] == g[j] and abs(s[i] - s[j]) <= 1))]
        total += -(sim[i, pos] - torch.logsumexp(sim[i, keep], 0))
    assert loss.item() == pytest.approx((total / 8).item(), rel=1e-5)


def test_bad_slices_are_refused():
    z1, z2 = _z()
    g = torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="slices need groups"):
        nt_xent_logits(z1, z2, slices=(g, g), window=1)
    with pytest.raises(ValueError, match="shape"):
        nt_xent_logits(z1, z2, groups=g, slices=(g[:3], g), window=1)
    with pytest.raises(ValueError, match="window"):
        nt_xent_logits(z1, z2, groups=g, slices=(g, g), window=-1)
