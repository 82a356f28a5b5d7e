import math
import warnings

import numpy as np
import pytest

from segclr.evaluation.metrics import DiceAccumulator, confusion, dice, dice_from_counts, nanmean
from segclr.evaluation.volume_metrics import VolumeEvaluator
from segclr.io.volumes import Volume


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
    # pooled over the three cases: TP 50, FP 0, FN 1 -> 100 / 101 (a literal, not the code under test)
    assert m["pooled_Dice"] == pytest.approx(100 / 101, rel=1e-12)
    assert m["n_nan"] == 1 and m["n_cases"] == 3
    assert m["name"] == "fluid"
    summary = acc.summary()
    assert len(summary["metric_per_case"]) == 3
    assert [c["reference_file"] for c in summary["metric_per_case"]] == ["big", "small", "empty"]
    assert [c["prediction_file"] for c in summary["metric_per_case"]] == ["big", "small", "empty"]
    assert summary["metric_per_case"][1]["metrics"]["1"] == {
        "Dice": 0.0, "TP": 0, "FP": 0, "FN": 1, "n_pred": 0, "n_ref": 1}
    assert summary["metric_per_case"][0]["metrics"]["1"]["n_pred"] == 50
    assert summary["foreground_mean"] == {"Dice": pytest.approx(0.5), "pooled_Dice": pytest.approx(100 / 101)}


def test_pooled_dice_differs_from_the_mean_of_cases():
    acc = DiceAccumulator({1: "IRF", 2: "SRF"})
    ref = np.array([[1, 1, 1, 0, 2, 2]])
    acc.add("a", np.array([[1, 1, 0, 0, 2, 0]]), ref)   # IRF: TP 2, FN 1; SRF: TP 1, FN 1
    acc.add("b", np.array([[0, 1, 1, 1, 0, 0]]), np.array([[1, 1, 0, 0, 0, 0]]))  # IRF: TP 1, FP 2, FN 1; SRF: empty
    per = acc.per_label()
    assert per["1"]["Dice"] == pytest.approx((4 / 5 + 2 / 5) / 2)
    assert per["1"]["pooled_Dice"] == pytest.approx(6 / 10)   # TP 3, FP 2, FN 2 -> 6 / (6 + 4)
    assert per["2"]["Dice"] == pytest.approx(2 / 3)             # case b is NaN and skipped
    assert per["2"]["pooled_Dice"] == pytest.approx(2 / 3)      # TP 1, FP 0, FN 1
    assert (per["2"]["n_nan"], per["2"]["n_cases"]) == (1, 2)
    fg = acc.summary()["foreground_mean"]
    assert fg["Dice"] == pytest.approx(((4 / 5 + 2 / 5) / 2 + 2 / 3) / 2)
    assert fg["pooled_Dice"] == pytest.approx((6 / 10 + 2 / 3) / 2)


def test_all_empty_class_is_nan_everywhere():
    acc = DiceAccumulator({1: "IRF"})
    acc.add("a", np.zeros((2, 2), int), np.zeros((2, 2), int))
    per = acc.per_label()["1"]
    assert math.isnan(per["Dice"]) and math.isnan(per["pooled_Dice"]) and per["n_nan"] == 1
    fg = acc.summary()["foreground_mean"]
    assert math.isnan(fg["Dice"]) and math.isnan(fg["pooled_Dice"])
    assert math.isnan(DiceAccumulator({1: "IRF"}).per_label()["1"]["Dice"])  # no cases at all


def test_confusion_counts_and_nanmean():
    pred = np.array([[1, 1, 0, 2], [0, 1, 2, 2]])
    ref = np.array([[1, 0, 1, 2], [0, 1, 0, 2]])
    assert confusion(pred, ref, 1) == (2, 1, 1)
    assert confusion(pred, ref, 2) == (2, 1, 0)
    assert confusion(pred, ref, 0) == (1, 1, 2)
    assert dice_from_counts(3, 0, 0) == 1.0 and dice_from_counts(1, 2, 3) == pytest.approx(2 / 7)
    assert math.isnan(dice_from_counts(0, 0, 0)) and dice_from_counts(0, 1, 0) == 0.0
    assert nanmean([1.0, float("nan"), 0.0]) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" warning: the empty case is handled
        assert math.isnan(nanmean([])) and math.isnan(nanmean([float("nan")]))
    per = DiceAccumulator({1: "IRF"}).add("c", pred, ref)["metrics"]["1"]
    assert per == {"Dice": pytest.approx(2 / 3), "TP": 2, "FP": 1, "FN": 1, "n_pred": 3, "n_ref": 3}


def test_multiclass_labels_scored_separately():
    acc = DiceAccumulator({1: "IRF", 2: "SRF"})
    ref = np.array([[1, 2, 0]])
    pred = np.array([[1, 1, 0]])
    per = acc.add("c", pred, ref)["metrics"]
    assert per["1"]["Dice"] == pytest.approx(2 / 3)
    assert per["2"]["Dice"] == 0.0


def test_volume_iou_both_empty_is_nan_and_false_positive_is_zero():
    ref = np.zeros((2, 4, 4), np.uint8)
    pred = np.zeros_like(ref)
    ref[0, 0, :3] = 1
    pred[0, 0, 1:] = 1        # class 1: TP 2, FP 1, FN 1 -> IoU 2 / 4
    pred[1, 2, 2] = 2         # class 2: a false positive on an empty reference -> IoU 0
    ev = VolumeEvaluator({1: "IRF", 2: "SRF", 3: "PED"})   # class 3: empty in both -> NaN
    m = ev.add("c", Volume(pred), Volume(ref))["metrics"]
    assert m["1"]["IoU"] == pytest.approx(0.5)
    assert m["2"]["IoU"] == 0.0 and m["2"]["Dice"] == 0.0
    assert math.isnan(m["3"]["IoU"]) and math.isnan(m["3"]["Dice"])
    mean = ev.summary()["mean"]
    assert math.isnan(mean["3"]["IoU"]) and mean["3"]["n_nan"] == 1
    # the NaN class does not drag the foreground mean down
    assert ev.summary()["foreground_mean"]["IoU"] == pytest.approx(0.25)


def test_bscan_summary_follows_the_nnunet_rule_per_bscan():
    from segclr.evaluation.metrics import bscan_summary

    z = np.zeros((4, 4), np.uint8)
    ref, pred = [z.copy() for _ in range(3)], [z.copy() for _ in range(3)]
    pred[0][0, 0] = 1                    # a false positive on an empty B-scan: Dice 0
    ref[1][:2, :2] = 1
    pred[1][:2, :1] = 1                  # 2 of 4 px found: Dice 2/3
    # B-scan 2: nothing to find, nothing found: NaN, left out of the per-B-scan mean
    out = bscan_summary(pred, ref)
    assert out["dice_per_bscan"] == pytest.approx((0 + 2 / 3) / 2)
    assert out["dice_fluid_bscans"] == pytest.approx(2 / 3)
    assert out["dice_pooled"] == pytest.approx(4 / (4 + 1 + 2))
    assert (out["false_positive_bscans"], out["empty_bscans"]) == (1, 2)
    assert out["area_ratio"] == pytest.approx(3 / 4)  # 3 px predicted (1 false, 2 found) over 4 px graded


def test_area_ratio_shows_the_volume_bias_that_dice_hides():
    from segclr.evaluation.metrics import area_ratio, bscan_counts

    ref = np.zeros((8, 8), np.uint8)
    ref[2:6, 2:6] = 1                    # 16 px
    wide = np.zeros_like(ref)
    wide[1:7, 1:7] = 1                   # 36 px around them
    narrow = np.zeros_like(ref)
    narrow[3:5, 2:6] = 1                 # 8 of them
    acc = DiceAccumulator({1: "fluid"})
    acc.add("wide", wide, ref)
    assert acc.per_label()["1"]["area_ratio"] == pytest.approx(36 / 16)
    acc.add("narrow", narrow, ref)
    assert acc.per_label()["1"]["area_ratio"] == pytest.approx((36 + 8) / 32)  # summed over cases, not averaged
    assert math.isnan(area_ratio(5, 0)) and area_ratio(0, 4) == 0.0
    cases = [c["metrics"]["1"] for c in acc.cases]
    assert bscan_counts(cases)["area_ratio"] == pytest.approx(44 / 32)
