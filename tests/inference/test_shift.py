"""Domain-shift score: ordering on a synthetic shift, statistics stored in the bundle."""

import numpy as np
import pytest
import torch

from segclr.inference.shift import (auroc, conformal_threshold, fit_shift_statistics, format_comparison, shift_scores,
                                    split_bundle_tensors, to_bundle_tensors)


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
    assert set(back) == {"mean", "precision", "threshold", "calibration"}
    assert split_bundle_tensors({"net.w": torch.zeros(2)})[1] is None


@pytest.mark.parametrize("dim", [16, 128])
def test_held_out_calibration_stops_false_alarms_on_new_in_distribution_data(dim):
    """55 training B-scans in 5 volumes, as on the benchmark: in-sample scores are biased low."""
    g = torch.Generator().manual_seed(0)
    train = torch.randn(55, dim, generator=g, dtype=torch.float64)
    new = torch.randn(1000, dim, generator=g, dtype=torch.float64)  # same distribution, unseen
    in_sample = fit_shift_statistics(train)
    held_out = fit_shift_statistics(train, groups=[i // 11 for i in range(55)])
    old_rate = float((shift_scores(new, in_sample) > in_sample["threshold"]).double().mean())
    new_rate = float((shift_scores(new, held_out) > held_out["threshold"]).double().mean())
    assert old_rate > 0.2          # the old 99th percentile of in-sample scores: many false alarms
    assert new_rate <= 1 / 56 + 0.02  # the conformal bound with 55 held-out scores, plus sampling slack
    assert held_out["calibration"].tolist() == [55.0, 5.0]
    assert in_sample["calibration"].tolist() == [55.0, 0.0]
    # a clear shift is still flagged
    far = shift_scores(torch.randn(100, dim, generator=g, dtype=torch.float64) * 2 + 1.5, held_out)
    assert float((far > held_out["threshold"]).double().mean()) > 0.9


def test_too_few_groups_fall_back_to_in_sample():
    x = torch.randn(20, 4, dtype=torch.float64)
    assert fit_shift_statistics(x, groups=[0] * 10 + [1] * 10)["calibration"].tolist() == [20.0, 0.0]
    with pytest.raises(ValueError, match="groups"):
        fit_shift_statistics(x, groups=[0, 1, 2])


def test_conformal_rank():
    scores = torch.arange(1, 201, dtype=torch.float64)  # n = 200: ceil(201 * 0.99) = 199th smallest
    assert conformal_threshold(scores) == 199.0
    assert conformal_threshold(scores[:50]) == 50.0  # n < 99: the largest


def test_comparison_prints_digits_that_differ():
    assert format_comparison(0.3127, 0.3102) == "0.313 > 0.310"
    assert format_comparison(0.31, 0.30999) == "0.31000 > 0.30999"
    assert format_comparison(0.2, 0.5) == "0.20 <= 0.50"
