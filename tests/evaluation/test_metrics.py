import math

import numpy as np
import pytest

from segclr.evaluation.metrics import DiceAccumulator, dice, dice_from_counts


def test_both_empty_is_nan():
    z = np.zeros((4, 4), int)
    assert math.isnan(dice(z, z))


def test_false_positive_on_empty_reference_is_zero():
    ref = np.zeros((4, 4), int)
    pred = ref.copy()
    pred[0, 0] = 1
    assert dice(pred, ref) == 0.0


def test_missed_lesion_is_zero_and_perfect_is_one():
    ref = np.zeros((4, 4), int)
    ref[1:3, 1:3] = 1
    assert dice(np.zeros_like(ref), ref) == 0.0
    assert dice(ref, ref) == 1.0


def test_hand_computed_value():
    ref = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    # TP=1, FP=1, FN=1 -> 2/(2+1+1)
    assert dice(pred, ref) == pytest.approx(0.5)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2), int), np.zeros((3, 2), int))


def test_accumulator_mean_skips_nan_and_pooled_weights_pixels():
    acc = DiceAccumulator({1: "fluid"})
    big = np.zeros((10, 10), int)
    big[:5] = 1  # 50 px, predicted perfectly -> 1.0
    acc.add("big", big, big)
    small_ref = np.zeros((10, 10), int)
    small_ref[0, 0] = 1  # 1 px, missed -> 0.0
    acc.add("small", np.zeros((10, 10), int), small_ref)
    acc.add("empty", np.zeros((10, 10), int), np.zeros((10, 10), int))  # NaN, skipped
    m = acc.summary()["mean"]["1"]
    assert m["Dice"] == pytest.approx(0.5)
    assert m["pooled_Dice"] == pytest.approx(dice_from_counts(50, 0, 1))
    assert m["n_nan"] == 1 and m["n_cases"] == 3
    assert len(acc.summary()["metric_per_case"]) == 3


def test_multiclass_labels_scored_separately():
    acc = DiceAccumulator({1: "IRF", 2: "SRF"})
    ref = np.array([[1, 2, 0]])
    pred = np.array([[1, 1, 0]])
    per = acc.add("c", pred, ref)["metrics"]
    assert per["1"]["Dice"] == pytest.approx(2 / 3)
    assert per["2"]["Dice"] == 0.0
