"""Label checks at the edge: a label exactly equal to num_classes is out of range.

The mask reader, the datamodule and the evaluator each refuse it (with the file or volume named),
and accept the largest valid label, num_classes - 1. The evaluator checks the *reference* masks,
not only the predictions.

Below that, the rest of the functions that hold those checks, as mutation testing found them
untested (``make mutation MODULES=labels``): the messages, the evaluator's mask lookup, spacing,
post-processing record and summary file. Which volumes the datamodule's setup takes for each stream
is in tests/data/test_datamodule_roles.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from segclr.data.datamodule import SegCLRDataModule
from segclr.data.domains import DomainBank
from segclr.data.domains import Volume as SliceVolume
from segclr.evaluation.evaluate import evaluate_folder
from segclr.evaluation.volume_metrics import VolumeEvaluator
from segclr.io.bundle import save_bundle
from segclr.io.images import InputError, read_mask, write_image, write_mask
from segclr.io.volumes import Volume, check_labels
from segclr.models import UNet


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_read_mask_refuses_a_label_equal_to_num_classes(tmp_path, num_classes):
    ok = np.zeros((8, 8), np.uint8)
    ok[2, 3] = num_classes - 1
    _png(tmp_path / "ok.png", ok)
    assert read_mask(tmp_path / "ok.png", num_classes).max() == num_classes - 1
    bad = ok.copy()
    bad[5, 5] = num_classes
    _png(tmp_path / "bad.png", bad)
    with pytest.raises(InputError, match=rf"bad\.png: mask values \[{num_classes}\] are outside the labels "
                                         rf"0\.\.{num_classes - 1}"):
        read_mask(tmp_path / "bad.png", num_classes)


def test_read_mask_refuses_negative_and_float_labels(tmp_path):
    arr = np.zeros((8, 8), np.int32)
    arr[0, 0] = -1
    Image.fromarray(arr, mode="I").save(tmp_path / "neg.tif")
    with pytest.raises(InputError, match=r"mask values \[-1\]"):
        read_mask(tmp_path / "neg.tif", 2)
    Image.fromarray(np.zeros((8, 8), np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(InputError, match="integer labels"):
        read_mask(tmp_path / "f.tif", 2)


def test_check_labels_edge():
    allowed = {0, 1, 2}
    assert check_labels(Volume(np.array([[[0, 1, 2]]], np.uint8)), allowed).dtype == np.int64
    with pytest.raises(InputError, match=r"ref\.mhd: label values \[3\] are not among the labels \[0, 1, 2\]"):
        check_labels(Volume(np.array([[[0, 3, 2]]], np.uint8)), allowed, "ref.mhd")
    assert check_labels(Volume(np.array([[[0.0, 2.0]]], np.float32)), allowed).tolist() == [[[0, 2]]]
    with pytest.raises(InputError, match="non-integer"):
        check_labels(Volume(np.array([[[0.0, 1.5]]], np.float32)), allowed)


def test_volume_evaluator_checks_the_reference_too():
    ev = VolumeEvaluator({1: "IRF", 2: "SRF"})
    good = np.zeros((2, 4, 4), np.uint8)
    ref = good.copy()
    ref[1, 1, 1] = 3  # == number of classes (background, IRF, SRF)
    with pytest.raises(InputError, match=r"r\.mhd: label values \[3\]"):
        ev.add("c", Volume(good), Volume(ref), "p.mhd", "r.mhd")
    ref[1, 1, 1] = 2
    assert ev.add("c", Volume(good), Volume(ref), "p.mhd", "r.mhd")["metrics"]["2"]["FN"] == 1


# ----------------------------------------------------------------------------------- datamodule
class _Bank(DomainBank):
    """A DomainBank of the user's-dataset kind: the same two small volumes for every domain and role."""

    def __init__(self, top_label: int) -> None:
        super().__init__(simulation_seed=0)
        self.external = True  # volumes from a dataset file: nothing is simulated
        rng = np.random.default_rng(0)
        self.vols = []
        for p in (1, 2):
            masks = [np.zeros((64, 64), np.int64) for _ in range(3)]
            masks[1][10:20, 10:20] = 1
            masks[2][30, 30] = top_label
            images = [rng.random((64, 64)).astype(np.float32) for _ in range(3)]
            self.vols.append(SliceVolume("spectralis", p, images, masks, names=[f"vol{p}#{k}" for k in range(3)]))

    def domain(self, name: str):
        return self.vols

    def volumes(self, name: str, role: str):
        return self.vols


@pytest.mark.parametrize("num_classes", [2, 3])
def test_datamodule_refuses_a_label_equal_to_num_classes(make_config, num_classes):
    cfg = make_config(objective={"mode": "supervised"}, model={"num_classes": num_classes})
    SegCLRDataModule(cfg, bank=_Bank(num_classes - 1)).setup()  # the largest valid label is fine
    with pytest.raises(InputError, match=rf"vol1: label {num_classes} but model\.num_classes is {num_classes}"):
        SegCLRDataModule(cfg, bank=_Bank(num_classes)).setup()


# ----------------------------------------------------------------------------------- evaluate_folder
@pytest.fixture(scope="module")
def three_class_bundle(tmp_path_factory):
    return _three_class_bundle(tmp_path_factory, {"input_height": 32, "pad_multiple": 4})


def _three_class_bundle(tmp_path_factory, preprocess: dict):
    """An untrained 3-class UNet bundle (base 4, depth 2) with the given preprocessing."""
    torch.manual_seed(0)
    meta = {
        "model": {"num_classes": 3, "base_channels": 4, "depth": 2, "norm": "batch", "dropout": 0.0},
        "preprocess": preprocess,
        "classes": ["background", "IRF", "SRF"],
        "training": {"mode": "supervised", "labeled_domain": "spectralis", "unlabeled_domains": [],
                     "steps": 0, "seed": 0, "segclr_version": "test"},
    }
    path = tmp_path_factory.mktemp("bundle") / "model.safetensors"
    save_bundle(path, UNet(1, 3, 4, 2, "batch").eval().state_dict(), meta)
    return path


def test_evaluate_folder_refuses_a_reference_label_equal_to_num_classes(tmp_path, three_class_bundle):
    images, masks = tmp_path / "images", tmp_path / "masks"
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image(images / name, rng.random((32, 40)))
        write_mask(masks / name, np.zeros((32, 40), np.uint8))
    ok = np.zeros((32, 40), np.uint8)
    ok[3:6, 3:6] = 2  # the largest label of a 3-class model
    write_mask(masks / "b.png", ok)
    summary = evaluate_folder(three_class_bundle, images, masks, progress=False)
    assert summary["metric_per_case"][1]["metrics"]["2"]["n_ref"] == 9
    ok[0, 0] = 3
    write_mask(masks / "b.png", ok)
    with pytest.raises(InputError, match=r"b\.png: mask values \[3\] are outside the labels 0\.\.2"):
        evaluate_folder(three_class_bundle, images, masks, progress=False)


# ------------------------------------------------------------------------- messages at the edges
def test_read_mask_lists_at_most_five_bad_values(tmp_path):
    arr = np.zeros((8, 8), np.uint8)
    arr[0, :7] = [3, 4, 5, 6, 7, 8, 9]  # seven labels outside 0..2
    _png(tmp_path / "m.png", arr)
    with pytest.raises(InputError, match=r"m\.png: mask values \[3, 4, 5, 6, 7\] are outside the labels 0\.\.2$"):
        read_mask(tmp_path / "m.png", 3)


def test_check_labels_messages_and_value_paths():
    allowed = [0, 1, 2]
    # without a name or a path the volume is called "label volume"
    with pytest.raises(InputError, match=r"^label volume: label values \[5\] are not among the labels \[0, 1, 2\]$"):
        check_labels(Volume(np.array([[[0, 5]]], np.uint8)), allowed)
    with pytest.raises(InputError, match=r"^r\.mhd: label values \[3, 4, 5, 6, 7\] are not among"):
        check_labels(Volume(np.arange(9, dtype=np.uint8).reshape(1, 1, 9)), allowed, "r.mhd")
    with pytest.raises(InputError, match=r"^s\.mhd: label volume has unsupported data type <U1$"):
        check_labels(Volume(np.array([[["a"]]])), allowed, "s.mhd")
    # negative labels (signed arrays) are reported, not crashed on
    with pytest.raises(InputError, match=r"^n\.mhd: label values \[-2, -1\] are not among the labels \[0, 1, 2\]$"):
        check_labels(Volume(np.array([[[0, -1, -2, 1]]], np.int16)), allowed, "n.mhd")
    # labels above the bincount range are found too
    with pytest.raises(InputError, match=r"^b\.mhd: label values \[70000\]"):
        check_labels(Volume(np.array([[[0, 70000, 2]]], np.int32)), allowed, "b.mhd")
    assert check_labels(Volume(np.array([[[0, 1]]], bool)), [0, 1]).tolist() == [[[0, 1]]]
    empty = check_labels(Volume(np.zeros((1, 0, 4), np.uint8)), allowed)
    assert empty.shape == (1, 0, 4) and empty.dtype == np.int64


# ----------------------------------------------------------------------- evaluate_folder, fully
class _SpyPredictor:
    """Wraps the real Predictor and records the spacing each B-scan is predicted at."""

    calls: list = []

    def __new__(cls, checkpoint, **kwargs):
        from segclr.inference.predict import Predictor

        class Spy(Predictor):
            def __call__(self, image, spacing_um=None):
                _SpyPredictor.calls.append(spacing_um)
                return super().__call__(image, spacing_um)

        return Spy(checkpoint, **kwargs)


@pytest.fixture(scope="module")
def spacing_aware_bundle(tmp_path_factory):
    return _three_class_bundle(tmp_path_factory, {"input_height": 32, "pad_multiple": 4,
                                                  "target_spacing_um": [4.0, 12.0]})


def _folders(tmp_path, names=("a.png", "b.png"), mask_names=None):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        _png(images / name, (rng.random((32, 40)) * 255).astype(np.uint8))
    for name in (names if mask_names is None else mask_names):
        mask = np.zeros((32, 40), np.uint8)
        mask[2:2 + len(name), 4:8] = 1  # n_ref of class 1 tells the masks apart: 4 * len(name)
        _png(masks / name, mask)
    return images, masks


def test_evaluate_folder_finds_masks_by_name_then_by_stem(tmp_path, three_class_bundle):
    images, masks = _folders(tmp_path, names=("a.png", "bb.tif"), mask_names=("a.png", "bb.png"))
    summary = evaluate_folder(three_class_bundle, images, masks, progress=False)
    n_ref = {c["reference_file"]: c["metrics"]["1"]["n_ref"] for c in summary["metric_per_case"]}
    assert n_ref == {"a.png": 4 * 5, "bb.tif": 4 * 6}
    assert summary["checkpoint"] == str(three_class_bundle)


def test_evaluate_folder_records_the_post_processing_it_applied(tmp_path, three_class_bundle):
    from segclr.io.bundle import load_bundle

    images, masks = _folders(tmp_path)
    assert evaluate_folder(three_class_bundle, images, masks, progress=False)["postprocess"] is None  # none stored
    state, meta = load_bundle(three_class_bundle)
    meta["postprocess"] = {"min_component_px": 3, "retina_only": False}
    with_pp = tmp_path / "pp.safetensors"
    save_bundle(with_pp, state, meta)
    applied = {"min_component_px": 3, "retina_only": False}
    assert evaluate_folder(with_pp, images, masks, progress=False)["postprocess"] == applied
    assert evaluate_folder(with_pp, images, masks, progress=False, postprocess=True)["postprocess"] == applied
    assert evaluate_folder(with_pp, images, masks, progress=False, postprocess=False)["postprocess"] is None


def test_evaluate_folder_refusals_name_the_file(tmp_path, three_class_bundle):
    images, masks = _folders(tmp_path, mask_names=())
    with pytest.raises(InputError, match=rf"^{tmp_path / 'nowhere'}: mask folder not found$"):
        evaluate_folder(three_class_bundle, images, tmp_path / "nowhere", progress=False)
    # an empty mask folder: every image's mask is missing (not "no B-scans in this folder")
    with pytest.raises(InputError, match=rf"^{masks / 'a.png'}: mask missing for image a\.png \(2 missing\)$"):
        evaluate_folder(three_class_bundle, images, masks, progress=False)
    _png(masks / "a.png", np.zeros((32, 40), np.uint8))
    with pytest.raises(InputError, match=rf"^{masks / 'b.png'}: mask missing for image b\.png \(1 missing\)$"):
        evaluate_folder(three_class_bundle, images, masks, progress=False)
    _png(masks / "b.png", np.zeros((32, 48), np.uint8))
    with pytest.raises(InputError, match=rf"^{masks / 'b.png'}: mask shape \(32, 48\) differs from image shape "
                                         rf"\(32, 40\)$"):
        evaluate_folder(three_class_bundle, images, masks, progress=False)


def test_evaluate_folder_writes_its_summary_and_shows_progress_by_default(tmp_path, three_class_bundle, capsys):
    images, masks = _folders(tmp_path)
    out = tmp_path / "out" / "summary.json"
    summary = evaluate_folder(three_class_bundle, images, masks, out=out)
    assert out.read_text() == json.dumps(summary, indent=2)
    assert "evaluate" in capsys.readouterr().err  # the progress bar
    evaluate_folder(three_class_bundle, images, masks, progress=True)
    assert "evaluate" in capsys.readouterr().err
    evaluate_folder(three_class_bundle, images, masks, progress=False)
    assert capsys.readouterr().err == ""


def test_evaluate_folder_predicts_at_the_given_spacing(tmp_path, spacing_aware_bundle, monkeypatch, capsys):
    import segclr.evaluation.evaluate as evaluate

    monkeypatch.setattr(evaluate, "Predictor", _SpyPredictor)
    images, masks = _folders(tmp_path)
    _SpyPredictor.calls = []
    evaluate_folder(spacing_aware_bundle, images, masks, progress=False, spacing_um=(3.0, 11.0))
    assert _SpyPredictor.calls == [(3.0, 11.0), (3.0, 11.0)]
    assert capsys.readouterr().out == ""  # the spacing is known: no warning
    # a volume.json sidecar gives the spacing (z, y, x mm) when none is given
    (images / "volume.json").write_text(json.dumps({"spacing_mm": [0.1, 0.005, 0.01]}))
    _SpyPredictor.calls = []
    evaluate_folder(spacing_aware_bundle, images, masks, progress=False)
    assert _SpyPredictor.calls == [pytest.approx((5.0, 10.0))] * 2
    assert capsys.readouterr().out == ""
    # unknown spacing: the height rule, and one warning line naming the folder
    (images / "volume.json").unlink()
    _SpyPredictor.calls = []
    evaluate_folder(spacing_aware_bundle, images, masks, progress=False)
    assert _SpyPredictor.calls == [None, None]
    out = capsys.readouterr().out
    assert out.startswith(f"warning: {images}: pixel spacing unknown; resized to 32 rows") and out.count("\n") == 1

