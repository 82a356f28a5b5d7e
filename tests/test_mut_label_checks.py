"""Label checks at the edge: a label exactly equal to num_classes is out of range.

The mask reader, the datamodule and the evaluator each refuse it (with the file or volume named),
and accept the largest valid label, num_classes - 1. The evaluator checks the *reference* masks,
not only the predictions.
"""

from __future__ import annotations

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
    torch.manual_seed(0)
    meta = {
        "model": {"num_classes": 3, "base_channels": 4, "depth": 2, "norm": "batch", "dropout": 0.0},
        "preprocess": {"input_height": 32, "pad_multiple": 4},
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
