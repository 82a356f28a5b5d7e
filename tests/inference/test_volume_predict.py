"""Volume prediction: batched = per-B-scan, geometry kept, inputs untouched, outputs refused, nanoliters by hand."""

from __future__ import annotations

import csv
import hashlib
import sys
import types

import numpy as np
import pytest

from segclr.inference.predict import Predictor
from segclr.inference.volumes import (fluid_statistics, normalize_intensity, predict_bscan_folder, predict_volumes,
                                      segment_volume)
from segclr.io.bscans import write_bscan_folder
from segclr.io.images import InputError
from segclr.io.metaimage import write_metaimage
from segclr.io.nnunet import write_dataset
from segclr.io.volumes import Volume, read_volume, write_volume

SPACING = (0.12, 0.0039, 0.0113)


def oct_like(shape=(5, 40, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, shape[1])[None, :, None]
    return np.clip(120 + 100 * np.sin(rows * 9) + rng.normal(0, 30, shape), 0, 255).astype(np.uint8)


def geometry_volume(array) -> Volume:
    d = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    return Volume(array, SPACING, (2.0, -1.5, 0.25), d)


def digest(folder) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_nanoliters_against_a_hand_calculation():
    mask = np.zeros((3, 4, 5), np.uint8)
    mask[0, 0, :4] = 1      # 4 IRF voxels in B-scan 0
    mask[2, 1, :3] = 1      # 3 IRF voxels in B-scan 2
    mask[2, 3, 0:3] = 2     # 3 SRF voxels in B-scan 2
    # one voxel: 0.1 mm x 0.002 mm x 0.01 mm = 2e-6 mm^3 = 2e-6 uL = 2e-3 nL
    s = fluid_statistics(mask, (0.1, 0.002, 0.01), {1: "IRF", 2: "SRF", 3: "PED"})
    assert s["voxel_nl"] == pytest.approx(2e-3)
    assert s["IRF_voxels"] == 7 and s["IRF_nl"] == pytest.approx(0.014) and s["IRF_bscans"] == 2
    assert s["SRF_voxels"] == 3 and s["SRF_nl"] == pytest.approx(0.006) and s["SRF_bscans"] == 1
    assert s["PED_voxels"] == 0 and s["PED_nl"] == 0 and s["PED_bscans"] == 0
    assert s["total_fluid_nl"] == pytest.approx(0.020) and s["total_fluid_bscans"] == 2
    # a RETOUCH Cirrus voxel (2 mm / 1024 rows, 6 mm / 512 A-scans, 6 mm / 128 B-scans): 1 mm^3 of fluid
    cirrus = (6 / 128, 2 / 1024, 6 / 512)
    n = round(1 / np.prod(cirrus))
    one = np.zeros(n, np.uint8)
    one[:] = 1
    assert fluid_statistics(one.reshape(1, 1, n), cirrus, {1: "IRF"})["IRF_nl"] == pytest.approx(1000.0, rel=1e-4)
    unknown = fluid_statistics(mask, None, {1: "IRF"})
    assert unknown["IRF_nl"] is None and unknown["IRF_voxels"] == 7


def test_intensity_normalisation_rule():
    assert normalize_intensity(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert normalize_intensity(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert normalize_intensity(np.array([0.2, 0.5], np.float32)).tolist() == pytest.approx([0.2, 0.5])
    assert normalize_intensity(np.array([-10, 30], np.int16)).tolist() == [0.0, 1.0]
    with pytest.raises(InputError, match="NaN"):
        normalize_intensity(np.array([np.nan, 1.0]))


def test_batched_prediction_equals_per_bscan(tiny_bundle):
    predictor = Predictor(tiny_bundle)
    vol = oct_like()
    images = normalize_intensity(vol)
    single = np.stack([predictor(im) for im in images])
    for batch_size in (1, 2, 8):
        assert np.array_equal(segment_volume(predictor, vol, batch_size), single)
    probs = predictor.probabilities_batch(images[:3])
    assert probs.shape == (3, 3, 40, 48)
    assert np.allclose(probs[1].numpy(), predictor.probabilities(images[1]).numpy(), atol=1e-5)
    assert len(np.unique(single)) > 1  # the random model is not constant, so the comparison means something


@pytest.mark.parametrize("suffix", [".mhd", ".mha", ".nii", ".nii.gz"])
def test_predict_writes_same_format_and_geometry_and_leaves_inputs_alone(tiny_bundle, tmp_path, suffix):
    inp = tmp_path / "in"
    write_volume(inp / f"case1{suffix}", geometry_volume(oct_like(seed=1)))
    write_volume(inp / f"case2{suffix}", geometry_volume(oct_like(seed=2)))
    before = digest(inp)
    res = predict_volumes(tiny_bundle, inp, tmp_path / "out", batch_size=2, progress=False)
    assert digest(inp) == before
    assert [p.name for p in res.outputs] == [f"case1{suffix}", f"case2{suffix}"]
    for case, out in zip(("case1", "case2"), res.outputs):
        src, pred = read_volume(inp / f"{case}{suffix}"), read_volume(out)
        assert pred.same_geometry(src) and pred.array.dtype == np.uint8 and set(np.unique(pred.array)) <= {0, 1, 2}
        expected = segment_volume(Predictor(tiny_bundle), src)
        assert np.array_equal(pred.array, expected)
    rows = list(csv.DictReader(res.csv.open()))
    assert res.csv == tmp_path / "out" / "fluid_volumes.csv" and [r["case"] for r in rows] == ["case1", "case2"]
    pred = read_volume(res.outputs[0]).array
    voxel_nl = np.prod(SPACING) * 1000
    assert float(rows[0]["IRF_nl"]) == pytest.approx((pred == 1).sum() * voxel_nl, rel=1e-5)
    assert int(rows[0]["SRF_bscans"]) == int(((pred == 2).sum((1, 2)) > 0).sum())
    assert float(rows[0]["spacing_z_mm"]) == pytest.approx(0.12)


def test_predict_refuses_existing_outputs_and_overwriting_inputs(tiny_bundle, tmp_path):
    write_metaimage(tmp_path / "in" / "P1" / "oct.mhd", geometry_volume(oct_like()))
    out = tmp_path / "out"
    predict_volumes(tiny_bundle, tmp_path / "in", out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["P1.mhd", "P1.raw", "fluid_volumes.csv"]
    with pytest.raises(InputError, match=r"P1\.mhd: output exists"):
        predict_volumes(tiny_bundle, tmp_path / "in", out, progress=False)
    predict_volumes(tiny_bundle, tmp_path / "in", out, overwrite=True, progress=False)
    # a single volume to a file of another format; and never onto the input itself, even with overwrite
    one = predict_volumes(tiny_bundle, tmp_path / "in" / "P1" / "oct.mhd", tmp_path / "p1.nii.gz", progress=False)
    assert one.outputs == [tmp_path / "p1.nii.gz"] and one.csv == tmp_path / "p1_fluid_volumes.csv"
    assert read_volume(tmp_path / "p1.nii.gz").same_geometry(read_volume(tmp_path / "in" / "P1" / "oct.mhd"))
    with pytest.raises(InputError, match="would overwrite an input"):
        predict_volumes(tiny_bundle, tmp_path / "in" / "P1" / "oct.mhd", tmp_path / "in" / "P1" / "oct.mhd",
                        overwrite=True, progress=False)
    with pytest.raises(InputError, match="is inside the input folder"):
        predict_volumes(tiny_bundle, tmp_path / "in", tmp_path / "in", overwrite=True, progress=False)
    with pytest.raises(InputError, match="--output must be a folder"):
        write_metaimage(tmp_path / "in" / "P2" / "oct.mhd", geometry_volume(oct_like()))
        predict_volumes(tiny_bundle, tmp_path / "in", tmp_path / "x.mhd", progress=False)


def test_predict_nnunet_dataset_carries_domains_into_the_csv(tiny_bundle, tmp_path):
    img = geometry_volume(oct_like())
    write_dataset(tmp_path / "ds", [("a", img, img.with_array(np.zeros(img.shape, np.uint8)), "spectralis"),
                                    ("b", img, None, "cirrus_like")], {"background": 0, "IRF": 1, "SRF": 2})
    res = predict_volumes(tiny_bundle, tmp_path / "ds", tmp_path / "out", progress=False)
    assert [p.name for p in res.outputs] == ["a.nii.gz", "b.nii.gz"]
    assert [(r["case"], r["domain"]) for r in csv.DictReader(res.csv.open())] == [("a", "spectralis"),
                                                                                   ("b", "cirrus_like")]


def test_predict_vendor_file_writes_nifti(tiny_bundle, tmp_path, monkeypatch):
    class Oct:
        volume = list(oct_like())
        pixel_spacing = [0.0113, 0.0039, 0.12]  # .e2e order: lateral, axial, slice

    readers = types.SimpleNamespace(E2E=lambda path: types.SimpleNamespace(read_oct_volume=lambda: [Oct()]))
    package = types.ModuleType("oct_converter")
    package.readers = readers
    monkeypatch.setitem(sys.modules, "oct_converter", package)
    monkeypatch.setitem(sys.modules, "oct_converter.readers", readers)
    (tmp_path / "scan.e2e").write_bytes(b"fake")
    res = predict_volumes(tiny_bundle, tmp_path / "scan.e2e", tmp_path / "out", progress=False)
    assert res.outputs == [tmp_path / "out" / "scan.nii.gz"]
    assert read_volume(res.outputs[0]).spacing_mm == pytest.approx(SPACING)


def test_bscan_folder_prediction_with_fluid_csv(tiny_bundle, tmp_path):
    write_bscan_folder(tmp_path / "scans", Volume(oct_like(), (0.12, 0.0039, 0.0113)), kind="image")
    res = predict_bscan_folder(tiny_bundle, tmp_path / "scans", tmp_path / "masks", tmp_path / "fluid.csv",
                               progress=False)
    assert len(res.outputs) == 5 and not (tmp_path / "masks" / "fluid_volumes.csv").exists()
    row = next(csv.DictReader((tmp_path / "fluid.csv").open()))
    assert row["slices"] == "5" and float(row["voxel_nl"]) == pytest.approx(np.prod(SPACING) * 1000, rel=1e-5)
    with pytest.raises(InputError, match="fluid.csv: output exists"):
        predict_bscan_folder(tiny_bundle, tmp_path / "scans", tmp_path / "masks2", tmp_path / "fluid.csv")


def test_colliding_outputs_are_refused_before_anything_is_written(tiny_bundle, tmp_path):
    write_metaimage(tmp_path / "in" / "P1" / "oct.mhd", geometry_volume(oct_like()))
    with pytest.raises(InputError, match=r"p\.mhd: two outputs would be written to this path, for .*oct\.mhd "
                                         r"and for the fluid-volume CSV"):
        predict_volumes(tiny_bundle, tmp_path / "in" / "P1" / "oct.mhd", tmp_path / "out" / "p.mhd",
                        csv_path=tmp_path / "out" / "p.mhd", progress=False)
    with pytest.raises(InputError, match=r"p\.raw: two outputs"):
        predict_volumes(tiny_bundle, tmp_path / "in" / "P1" / "oct.mhd", tmp_path / "out" / "p.mhd",
                        csv_path=tmp_path / "out" / "p.raw", progress=False)
    img = geometry_volume(oct_like())
    write_dataset(tmp_path / "ds", [("c1", img, img.with_array(np.zeros(img.shape, np.uint8)), None),
                                    ("c1", img, None, None)], {"background": 0, "IRF": 1, "SRF": 2})
    with pytest.raises(InputError, match=r"c1\.nii\.gz: two outputs .* for .*imagesTr/c1_0000\.nii\.gz and for "
                                         r".*imagesTs/c1_0000\.nii\.gz"):
        predict_volumes(tiny_bundle, tmp_path / "ds", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_an_orphan_data_file_is_named_as_such(tiny_bundle, tmp_path):
    write_metaimage(tmp_path / "in" / "P1" / "oct.mhd", geometry_volume(oct_like()))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "P1.raw").write_bytes(b"left by a killed run")
    with pytest.raises(InputError, match=r"P1\.raw: data file without its \.mhd header"):
        predict_volumes(tiny_bundle, tmp_path / "in", tmp_path / "out", progress=False)


def test_sheared_grid_fluid_volume_uses_the_determinant(tiny_bundle, tmp_path):
    shear = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])   # unit columns, |det| = 0.8
    vol = Volume(oct_like(), SPACING, (0.0, 0.0, 0.0), shear)
    assert vol.voxel_mm3 == pytest.approx(0.8 * np.prod(SPACING))
    write_volume(tmp_path / "s.nii.gz", vol)
    res = predict_volumes(tiny_bundle, tmp_path / "s.nii.gz", tmp_path / "out", progress=False)
    row = next(csv.DictReader(res.csv.open()))
    assert float(row["voxel_nl"]) == pytest.approx(0.8 * np.prod(SPACING) * 1000, rel=1e-4)


def test_rescaled_volume_intensities_are_noted_once(capsys):
    from segclr.io.images import reset_notes

    reset_notes()
    arr = oct_like().astype(np.int32) * 100 - 5000
    out = normalize_intensity(arr, "v.mhd")
    normalize_intensity(arr, "v.mhd")
    assert out.min() == 0.0 and out.max() == 1.0
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "v.mhd: int32 intensities span" in err and "per volume" in err


def test_single_bscan_file_prediction(tiny_bundle, tmp_path):
    from PIL import Image

    from segclr.inference.volumes import predict_bscan_file

    (tmp_path / "in").mkdir()
    Image.fromarray(oct_like()[0]).save(tmp_path / "in" / "b.tif")
    res = predict_bscan_file(tiny_bundle, tmp_path / "in" / "b.tif", tmp_path / "out")
    assert res.outputs == [tmp_path / "out" / "b.png"]
    assert np.asarray(Image.open(res.outputs[0])).shape == (40, 48)
    res = predict_bscan_file(tiny_bundle, tmp_path / "in" / "b.tif", tmp_path / "m.png", csv_path=tmp_path / "f.csv")
    assert res.outputs == [tmp_path / "m.png"] and next(csv.DictReader(res.csv.open()))["slices"] == "1"
    with pytest.raises(InputError, match="m.png: output exists"):
        predict_bscan_file(tiny_bundle, tmp_path / "in" / "b.tif", tmp_path / "m.png")
    with pytest.raises(InputError, match="two outputs would be written"):
        predict_bscan_file(tiny_bundle, tmp_path / "in" / "b.tif", tmp_path / "n.png", csv_path=tmp_path / "n.png")
