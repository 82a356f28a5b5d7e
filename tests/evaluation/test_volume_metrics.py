"""Volume metrics: HD95 against hand-computed cases and brute force, Dice per volume and per B-scan, summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from segclr.evaluation.volume_metrics import VolumeEvaluator, evaluate_volume_folders, hd95, surface_distances
from segclr.io.images import InputError
from segclr.io.metaimage import write_metaimage
from segclr.io.volumes import Volume, write_volume


def test_hd95_anisotropic_single_voxels_by_hand():
    a = np.zeros((3, 4, 5), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[1, 2, 3] = True
    # spacing (z, y, x) = (0.5, 0.2, 0.1) mm: sqrt(0.5^2 + (2 * 0.2)^2 + (3 * 0.1)^2) = sqrt(0.5)
    assert hd95(a, b, (0.5, 0.2, 0.1)) == pytest.approx(math.sqrt(0.5))
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(math.sqrt(1 + 4 + 9))


def test_hd95_percentile_by_hand():
    ref = np.zeros((1, 3, 14), bool)
    ref[0, 1, 0:10] = True          # a line of 10 voxels
    pred = ref.copy()
    pred[0, 1, 10:12] = True        # 2 more voxels, 0.1 and 0.2 mm beyond the reference's end
    # surfaces are the lines themselves: pred -> ref gives 10 x 0 mm, 0.1, 0.2; ref -> pred gives 10 x 0 mm.
    # HD95 = max of the two directed 95th percentiles (linear). pred -> ref: 12 distances, rank 0.95 * 11 = 10.45,
    # between 0.1 (rank 10) and 0.2 (rank 11): 0.145 mm; ref -> pred: 0. (Pooling both directions, as segclr
    # once did, gives 0.095 mm.)
    assert hd95(pred, ref, (1.0, 1.0, 0.1)) == pytest.approx(0.145)
    assert hd95(ref, pred, (1.0, 1.0, 0.1)) == pytest.approx(0.145)
    assert hd95(ref, ref, (1.0, 1.0, 0.1)) == 0.0


def test_hd95_empty_masks_give_nan():
    a = np.zeros((2, 4, 4), bool)
    b = a.copy()
    b[0, 1, 1] = True
    assert math.isnan(hd95(a, b)) and math.isnan(hd95(b, a)) and math.isnan(hd95(a, a))


def _brute_hd95(a, b, spacing):
    st = ndimage.generate_binary_structure(3, 1)
    sa = np.argwhere(a & ~ndimage.binary_erosion(a, st, border_value=0)) * np.asarray(spacing)
    sb = np.argwhere(b & ~ndimage.binary_erosion(b, st, border_value=0)) * np.asarray(spacing)
    d = cdist(sa, sb)
    return float(max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_brute_force_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    shape = (6, 20, 24)
    a = ndimage.binary_dilation(rng.random(shape) > 0.985, iterations=2)
    b = ndimage.binary_dilation(rng.random(shape) > 0.985, iterations=2)
    spacing = (0.12, 0.0039, 0.0113)
    assert hd95(a, b, spacing) == pytest.approx(_brute_hd95(a, b, spacing), rel=1e-9)


def _monai_hd95(pred, ref, spacing):
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    onehot = [torch.from_numpy(np.stack([~m, m])[None].astype(np.float32)) for m in (pred, ref)]
    return float(metrics.compute_hausdorff_distance(*onehot, include_background=False, percentile=95,
                                                    spacing=list(spacing))[0, 0])


def _asymmetric_cases():
    ref = np.zeros((5, 30, 40), bool)
    ref[1:4, 8:20, 10:30] = True
    stray = ref.copy()
    stray[1:4, 24:28, 2:8] = True                  # the reference plus a small stray blob
    shrunk = np.zeros_like(ref)
    shrunk[2, 10:16, 14:22] = True                 # a prediction inside the reference
    shifted = np.roll(ref, 3, axis=2)
    shifted[:, :, :12] = False
    edge = np.zeros_like(ref)
    edge[:, 0:6, 30:40] = True                     # touches the image border
    rng = np.random.default_rng(3)
    blobs = ndimage.binary_dilation(rng.random(ref.shape) > 0.995, iterations=2)
    return {"stray_blob": (stray, ref), "inside": (shrunk, ref), "shifted": (shifted, ref),
            "border": (edge, ref), "random": (blobs, ref | edge)}


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", ["stray_blob", "inside", "shifted", "border", "random"])
@pytest.mark.parametrize("spacing", [(0.12, 0.0039, 0.0113), (1.0, 1.0, 1.0)])
def test_hd95_is_the_standard_definition_as_monai_computes_it(name, spacing):
    pred, ref = _asymmetric_cases()[name]
    expected = _monai_hd95(pred, ref, spacing)
    assert hd95(pred, ref, spacing) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert hd95(ref, pred, spacing) == pytest.approx(_monai_hd95(ref, pred, spacing), rel=1e-6, abs=1e-9)
    if name == "stray_blob":  # the case where pooling both directions (the old definition) differs
        pooled = np.percentile(np.concatenate([surface_distances(pred, ref, spacing),
                                               surface_distances(ref, pred, spacing)]), 95)
        assert expected > pooled * 1.2


def test_volume_and_slice_dice_follow_the_nnunet_rule():
    ref = np.zeros((3, 4, 4), np.uint8)
    pred = np.zeros_like(ref)
    ref[0, :2, :2] = 1          # slice 0: 4 ref voxels, pred hits 2 -> Dice 2*2/(2+4) = 2/3
    pred[0, :1, :2] = 1
    pred[1, 3, 3] = 1           # slice 1: false positive on an empty reference -> 0
    ref[2, 0, 0] = 2            # slice 2: class 2 missed -> 0; class 1 empty in both -> NaN (skipped)
    ev = VolumeEvaluator({1: "IRF", 2: "SRF"})
    spacing = (0.1, 0.01, 0.01)
    case = ev.add("c", Volume(pred, spacing), Volume(ref, spacing))
    m1 = case["metrics"]["1"]
    # volume: TP 2, FP 1, FN 2 -> 4 / 7
    assert (m1["TP"], m1["FP"], m1["FN"], m1["TN"]) == (2, 1, 2, 48 - 5)
    assert m1["Dice"] == pytest.approx(4 / 7) and m1["IoU"] == pytest.approx(2 / 5)
    assert m1["Dice_slice_mean"] == pytest.approx((2 / 3 + 0) / 2)
    assert case["metrics"]["2"]["Dice"] == 0.0 and math.isnan(case["metrics"]["2"]["HD95_mm"])
    s = ev.summary()
    assert set(s) >= {"metric_per_case", "mean", "foreground_mean", "slice_level"}
    assert s["mean"]["1"]["name"] == "IRF" and s["mean"]["1"]["Dice"] == pytest.approx(4 / 7)
    assert s["slice_level"]["mean"]["1"]["n_slices"] == 3 and s["slice_level"]["mean"]["1"]["n_nan"] == 1
    assert s["foreground_mean"]["Dice"] == pytest.approx((4 / 7 + 0) / 2)


def test_evaluator_refuses_mismatched_cases():
    ev = VolumeEvaluator({1: "fluid"})
    with pytest.raises(InputError, match="p.mhd: prediction shape"):
        ev.add("c", Volume(np.zeros((2, 4, 4), np.uint8)), Volume(np.zeros((2, 4, 5), np.uint8)), "p.mhd", "r.mhd")
    with pytest.raises(InputError, match="voxel spacing"):
        ev.add("c", Volume(np.zeros((2, 4, 4), np.uint8), (1, 1, 1)), Volume(np.zeros((2, 4, 4), np.uint8), (2, 1, 1)))
    with pytest.raises(InputError, match=r"label values \[7\]"):
        ev.add("c", Volume(np.full((2, 4, 4), 7, np.uint8)), Volume(np.zeros((2, 4, 4), np.uint8)))


def test_evaluate_folders_pairs_retouch_references_with_flat_predictions(tmp_path):
    spacing = (0.12, 0.0039, 0.0113)
    ref = np.zeros((2, 8, 8), np.uint8)
    ref[0, 2:5, 2:5] = 1
    ref[1, 1:3, 1:3] = 2
    for case in ("P1", "P2"):
        write_metaimage(tmp_path / "ref" / case / "reference.mhd", Volume(ref, spacing))
        write_metaimage(tmp_path / "ref" / case / "oct.mhd", Volume(np.zeros_like(ref), spacing))
    write_volume(tmp_path / "pred" / "P1.mhd", Volume(ref, spacing))
    write_volume(tmp_path / "pred" / "P2.nii.gz", Volume(np.zeros_like(ref), spacing))
    out = tmp_path / "summary.json"
    s = evaluate_volume_folders(tmp_path / "pred", tmp_path / "ref", out, progress=False)
    disk = json.loads(out.read_text())
    assert [c["prediction_file"].rsplit("/", 1)[-1] for c in disk["metric_per_case"]] == ["P1.mhd", "P2.nii.gz"]
    assert set(disk["mean"]) == {"1", "2", "3"} and disk["mean"]["1"]["name"] == "IRF"
    assert s["metric_per_case"][0]["metrics"]["1"]["Dice"] == 1.0
    assert s["metric_per_case"][0]["metrics"]["1"]["HD95_mm"] == 0.0
    assert s["metric_per_case"][1]["metrics"]["1"]["Dice"] == 0.0
    assert s["unpaired"] == {"prediction_only": [], "reference_only": []}
    (tmp_path / "pred" / "P2.nii.gz").unlink()
    write_volume(tmp_path / "pred" / "P9.nii.gz", Volume(ref, spacing))
    s = evaluate_volume_folders(tmp_path / "pred", tmp_path / "ref", progress=False)
    assert len(s["metric_per_case"]) == 1 and s["mean"]["1"]["n_cases"] == 1
    assert s["unpaired"] == {"prediction_only": ["P9"], "reference_only": ["P2"]}
    (tmp_path / "pred" / "P1.mhd").unlink()
    with pytest.raises(InputError, match="no prediction for any reference case"):
        evaluate_volume_folders(tmp_path / "pred", tmp_path / "ref", progress=False)


def test_evaluate_two_bscan_folders_as_one_volume_each(tmp_path):
    from segclr.io.bscans import write_bscan_folder

    ref = np.zeros((2, 16, 16), np.uint8)
    ref[0, 4:8, 4:8] = 1
    pred = ref.copy()
    pred[1, 0, 0] = 1
    side = (0.1, 0.01, 0.01)
    write_bscan_folder(tmp_path / "ref_masks", Volume(ref, side), names=["a.png", "b.png"])
    write_bscan_folder(tmp_path / "pred_masks", Volume(pred, side), names=["a.png", "b.png"])
    s = evaluate_volume_folders(tmp_path / "pred_masks", tmp_path / "ref_masks", progress=False)
    m = s["metric_per_case"][0]["metrics"]["1"]
    assert (m["TP"], m["FP"], m["FN"]) == (16, 1, 0) and m["Dice_slice_mean"] == pytest.approx((1.0 + 0.0) / 2)
    assert math.isfinite(m["HD95_mm"])  # spacing from volume.json


def test_evaluator_refuses_a_prediction_placed_elsewhere():
    ev = VolumeEvaluator({1: "fluid"})
    sp = (0.12, 0.0039, 0.0113)
    ref = Volume(np.zeros((2, 4, 4), np.uint8), sp, origin=(1.0, 2.0, 3.0))
    with pytest.raises(InputError, match=r"p.nii.gz: origin \(0, 0, 0\) differs from the reference's \(1, 2, 3\)"):
        ev.add("c", Volume(np.zeros((2, 4, 4), np.uint8), sp), ref, "p.nii.gz", "r.mhd")
    flipped = np.diag([1.0, -1.0, 1.0])
    with pytest.raises(InputError, match="p.nii.gz: direction .* differs from the reference's"):
        ev.add("c", Volume(np.zeros((2, 4, 4), np.uint8), sp, (1.0, 2.0, 3.0), flipped), ref, "p.nii.gz", "r.mhd")
    # float32 round-off in a NIfTI header is not a mismatch; B-scan folders carry no placement at all
    ev.add("c", Volume(np.zeros((2, 4, 4), np.uint8), sp, (1.0 + 1e-6, 2.0, 3.0)), ref)
    ev.add("c", Volume(np.zeros((2, 4, 4), np.uint8), sp, format="bscans"), ref)


def test_bscan_folders_are_paired_by_file_name_so_a_subset_can_be_scored(tmp_path, capsys):
    from PIL import Image

    from segclr.io.images import reset_notes

    reset_notes()
    ref = np.zeros((4, 16, 16), np.uint8)
    ref[:, 4:8, 4:8] = 1
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    for i, name in enumerate(["p1_s0", "p1_s1", "p9_s0", "p9_s1"]):
        Image.fromarray(ref[i]).save(tmp_path / "ref" / f"{name}.png")
    pred = ref[2].copy()
    pred[0, 0] = 1
    Image.fromarray(pred).save(tmp_path / "pred" / "p9_s0.png")   # held-out patient 9 only
    Image.fromarray(ref[3]).save(tmp_path / "pred" / "p9_s1.png")
    Image.fromarray(ref[3]).save(tmp_path / "pred" / "extra.png")
    s = evaluate_volume_folders(tmp_path / "pred", tmp_path / "ref", progress=False)
    m = s["metric_per_case"][0]["metrics"]["1"]
    assert (m["TP"], m["FP"], m["FN"]) == (32, 1, 0)
    assert s["slice_level"]["mean"]["1"]["n_slices"] == 2
    assert s["unpaired"] == {"prediction_only": ["extra"], "reference_only": ["p1_s0", "p1_s1"]}
    err = capsys.readouterr().err
    assert "1 prediction B-scan(s) without a reference, not scored: extra" in err
    assert "2 reference B-scan(s) without a prediction, not scored: p1_s0, p1_s1" in err
    for f in (tmp_path / "pred").iterdir():
        f.rename(tmp_path / "pred" / f"x{f.name}")
    with pytest.raises(InputError, match="no B-scan has the name of a B-scan in"):
        evaluate_volume_folders(tmp_path / "pred", tmp_path / "ref", progress=False)
