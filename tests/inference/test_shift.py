"""Domain-shift score: ordering on a synthetic shift, statistics stored in the bundle."""

import numpy as np
import pytest
import torch

from segclr.inference.shift import auroc, fit_shift_statistics, shift_scores, split_bundle_tensors, to_bundle_tensors


def test_scores_order_a_synthetic_shift():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(200, 8, generator=g, dtype=torch.float64)
    stats = fit_shift_statistics(train)
    near = shift_scores(torch.randn(50, 8, generator=g, dtype=torch.float64), stats)
    far = shift_scores(torch.randn(50, 8, generator=g, dtype=torch.float64) + 3.0, stats)
    assert near.mean() == pytest.approx(1.0, abs=0.35)  # ~1 for in-distribution data
    assert far.min() > near.median()
    assert auroc(near.numpy(), far.numpy()) > 0.99
    # threshold flags about 1 % of the training data itself
    assert (shift_scores(train, stats) > stats["threshold"]).float().mean() <= 0.02


def test_auroc_hand_cases():
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5


def test_bundle_tensor_round_trip():
    stats = fit_shift_statistics(torch.randn(20, 4, dtype=torch.float64))
    state = {"net.w": torch.zeros(2), **to_bundle_tensors(stats)}
    weights, back = split_bundle_tensors(state)
    assert list(weights) == ["net.w"]
    assert set(back) == {"mean", "precision", "threshold"}
    assert split_bundle_tensors({"net.w": torch.zeros(2)})[1] is None
