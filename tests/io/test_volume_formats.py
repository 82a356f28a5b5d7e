"""Volume readers/writers: round trips in every format, geometry, header lies, datasets, vendor files."""

from __future__ import annotations

import builtins
import json
import sys
import types

import numpy as np
import pytest

from segclr.io.bscans import read_bscan_folder, write_bscan_folder
from segclr.io.cases import find_cases, is_volume_input
from segclr.io.images import InputError
from segclr.io.metaimage import read_metaimage, write_metaimage
from segclr.io.nnunet import read_dataset, write_dataset
from segclr.io.vendor import read_vendor
from segclr.io.volumes import (Volume, check_labels, probe_volume, read_volume, strip_suffix, volume_suffix,
                               write_volume)


def rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def make_volume(dtype=np.uint8, shape=(4, 6, 5), seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        arr = rng.random(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dtype)
    return Volume(arr, spacing_mm=(0.12, 0.0039, 0.0113), origin=(1.5, -2.0, 3.25),
                  direction=rotation(0.1, -0.2, 0.3))


def assert_same(a: Volume, b: Volume, atol=1e-6) -> None:
    assert a.array.shape == b.array.shape and a.array.dtype == b.array.dtype
    assert np.array_equal(a.array, b.array)
    assert np.allclose(a.spacing_mm, b.spacing_mm, rtol=1e-6)
    assert np.allclose(a.origin, b.origin, atol=atol)
    assert np.allclose(a.direction, b.direction, atol=atol)


@pytest.mark.parametrize("name", ["v.mhd", "v.mha", "v.nii", "v.nii.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_volume_round_trip_keeps_array_and_geometry(tmp_path, name, dtype):
    vol = make_volume(dtype)
    write_volume(tmp_path / name, vol)
    back = read_volume(tmp_path / name)
    assert_same(vol, back)
    assert probe_volume(tmp_path / name) == vol.shape
    assert back.path == tmp_path / name and back.format == ("metaimage" if "m" in name[-3:] else "nifti")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_mhd_writes_raw_beside_it_and_header_names_it(tmp_path):
    vol = make_volume(np.uint8)
    write_metaimage(tmp_path / "oct.mhd", vol)
    header = (tmp_path / "oct.mhd").read_text()
    assert "ElementDataFile = oct.raw" in header and "DimSize = 5 6 4" in header and "MET_UCHAR" in header
    assert (tmp_path / "oct.raw").stat().st_size == vol.array.size


def test_geometry_matches_simpleitk(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    vol = make_volume(np.int16)
    spacing, origin, direction = vol.itk_geometry()
    for name in ("a.mhd", "a.nii.gz"):
        write_volume(tmp_path / name, vol)
        image = sitk.ReadImage(str(tmp_path / name))
        assert np.array_equal(sitk.GetArrayFromImage(image), vol.array)
        assert np.allclose(image.GetSpacing(), spacing, rtol=1e-6)
        assert np.allclose(image.GetOrigin(), origin, atol=1e-5)
        assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), direction, atol=1e-5)
        # and what SimpleITK writes, we read with the same geometry
        sitk.WriteImage(image, str(tmp_path / f"sitk_{name}"))
        assert_same(vol, read_volume(tmp_path / f"sitk_{name}"), atol=1e-5)


def test_compressed_mhd_uses_simpleitk_or_says_how_to_get_it(tmp_path, monkeypatch):
    sitk = pytest.importorskip("SimpleITK")
    vol = make_volume(np.uint8)
    image = sitk.GetImageFromArray(vol.array)
    image.SetSpacing(vol.itk_geometry()[0])
    sitk.WriteImage(image, str(tmp_path / "c.mhd"), useCompression=True)
    assert "CompressedData = True" in (tmp_path / "c.mhd").read_text()
    assert np.array_equal(read_volume(tmp_path / "c.mhd").array, vol.array)

    real_import = builtins.__import__

    def no_sitk(name, *args, **kwargs):
        if name == "SimpleITK":
            raise ImportError("no SimpleITK")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "SimpleITK", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_sitk)
    with pytest.raises(InputError, match=r"c\.mhd.*compressed.*segclr\[sitk\]"):
        read_volume(tmp_path / "c.mhd")


def _write_header(path, **over):
    keys = {"ObjectType": "Image", "NDims": "3", "DimSize": "5 6 4", "ElementType": "MET_UCHAR",
            "ElementSpacing": "0.0113 0.0039 0.12", "ElementDataFile": "oct.raw"}
    keys.update(over)
    data_file = keys.pop("ElementDataFile")
    lines = [f"{k} = {v}" for k, v in keys.items() if v is not None] + [f"ElementDataFile = {data_file}"]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "over, raw_bytes, needle",
    [
        ({"DimSize": "5 6 5"}, 120, r"oct\.raw: holds 120 bytes.*DimSize 5 6 5.*150 bytes"),       # DimSize lies
        ({"ElementType": "MET_USHORT"}, 120, r"oct\.raw: holds 120 bytes.*MET_USHORT.*240 bytes"),  # type lies
        ({}, 119, r"oct\.raw: holds 119 bytes"),                                                    # truncated raw
        ({"DimSize": "5 6"}, 120, r"oct\.mhd: DimSize.*3 positive integers"),
        ({"NDims": "4", "DimSize": "5 6 4 1"}, 120, r"oct\.mhd: NDims = 4"),
        ({"ElementType": None}, 120, r"oct\.mhd: missing ElementType"),
        ({"ElementSpacing": "0.1 x 0.2"}, 120, r"oct\.mhd: ElementSpacing"),
        ({"ElementNumberOfChannels": "3"}, 360, r"oct\.mhd: ElementNumberOfChannels = 3"),
        ({"ElementDataFile": "missing.raw"}, 120, r"oct\.mhd: its data file .*missing\.raw"),
    ],
)
def test_mhd_header_that_disagrees_with_its_data_is_refused(tmp_path, over, raw_bytes, needle):
    (tmp_path / "oct.raw").write_bytes(bytes(raw_bytes))
    _write_header(tmp_path / "oct.mhd", **over)
    with pytest.raises(InputError, match=needle):
        read_metaimage(tmp_path / "oct.mhd")
    with pytest.raises(InputError, match=needle):  # the cheap header check finds the same
        probe_volume(tmp_path / "oct.mhd")


def test_mhd_big_endian_2d_and_header_size(tmp_path):
    arr = np.arange(30, dtype=">u2").reshape(1, 5, 6)
    (tmp_path / "b.raw").write_bytes(b"JUNKJUNK" + arr.tobytes())
    _write_header(tmp_path / "b.mhd", NDims="2", DimSize="6 5", ElementType="MET_USHORT", ElementSpacing="0.5 0.25",
                  ElementByteOrderMSB="True", HeaderSize="8", ElementDataFile="b.raw")
    vol = read_metaimage(tmp_path / "b.mhd")
    assert vol.shape == (1, 5, 6) and np.array_equal(vol.array, arr.astype(np.uint16))
    assert vol.spacing_mm == (1.0, 0.25, 0.5)


def test_mhd_without_spacing_has_unknown_spacing(tmp_path):
    (tmp_path / "oct.raw").write_bytes(bytes(120))
    _write_header(tmp_path / "oct.mhd", ElementSpacing=None)
    vol = read_metaimage(tmp_path / "oct.mhd")
    assert vol.spacing_mm is None and vol.voxel_mm3 is None
    write_metaimage(tmp_path / "copy.mhd", vol)
    assert "ElementSpacing" not in (tmp_path / "copy.mhd").read_text()


@pytest.mark.parametrize("payload, needle", [(b"not a nifti file at all" * 20, "not a readable NIfTI"),
                                             (b"\x1f\x8b\x08\x00broken gzip", "not a readable NIfTI")])
def test_corrupt_nifti_is_refused_naming_the_file(tmp_path, payload, needle):
    f = tmp_path / "bad.nii.gz"
    f.write_bytes(payload)
    with pytest.raises(InputError, match=rf"bad\.nii\.gz: {needle}"):
        read_volume(f)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="unknown volume format"):
        write_volume(tmp_path / "x.nrrd", make_volume())
    with pytest.raises(InputError, match="x.mhd: file not found"):
        read_volume(tmp_path / "x.mhd")
    assert volume_suffix("a/b.NII.GZ") == ".nii.gz" and strip_suffix("case_0000.nii.gz") == "case_0000"


def test_check_labels_refuses_values_outside_the_labels():
    vol = Volume(np.array([[[0, 1], [2, 5]]], dtype=np.uint8), path="ref.mhd")
    with pytest.raises(InputError, match=r"ref\.mhd: label values \[5\]"):
        check_labels(vol, {0, 1, 2, 3})
    with pytest.raises(InputError, match="integer labels"):
        check_labels(Volume(np.full((1, 2, 2), 0.5, dtype=np.float32)), {0, 1})


def test_bscan_folder_round_trip_with_sidecar(tmp_path):
    mask = np.zeros((3, 16, 20), dtype=np.uint8)
    mask[1, 4:8, 5:9] = 1
    vol = Volume(mask, spacing_mm=(0.2, 0.004, 0.01))
    written = write_bscan_folder(tmp_path / "m", vol, names=["s0.png", "s1.png", "s2.png"])
    assert [p.name for p in written] == ["s0.png", "s1.png", "s2.png"]
    back = read_bscan_folder(tmp_path / "m", kind="mask", num_classes=2)
    assert np.array_equal(back.array, mask) and back.spacing_mm == (0.2, 0.004, 0.01)
    assert back.format == "bscans" and read_volume(tmp_path / "m").shape == (3, 16, 20)
    (tmp_path / "m" / "volume.json").unlink()
    assert read_bscan_folder(tmp_path / "m").spacing_mm is None


def test_bscan_folder_of_mixed_sizes_is_refused(tmp_path):
    write_bscan_folder(tmp_path / "m", Volume(np.zeros((1, 16, 20), np.uint8)), names=["a.png"])
    write_bscan_folder(tmp_path / "m", Volume(np.zeros((1, 16, 24), np.uint8)), names=["b.png"])
    with pytest.raises(InputError, match=r"b\.png: B-scan size"):
        read_bscan_folder(tmp_path / "m")


def test_nnunet_dataset_round_trip_with_domains(tmp_path):
    img_a, img_b = make_volume(np.uint8, seed=1), make_volume(np.uint8, seed=2)
    lab = img_a.with_array((img_a.array % 4).astype(np.uint8))
    ds = write_dataset(tmp_path / "Dataset001_OCT",
                       [("a", img_a, lab, "spectralis"), ("b", img_b, None, "cirrus")],
                       {"background": 0, "IRF": 1, "SRF": 2, "PED": 3})
    root = tmp_path / "Dataset001_OCT"
    assert (root / "imagesTr" / "a_0000.nii.gz").is_file() and (root / "labelsTr" / "a.nii.gz").is_file()
    assert (root / "imagesTs" / "b_0000.nii.gz").is_file()
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "IRF": 1, "SRF": 2, "PED": 3} and meta["numTraining"] == 1
    assert ds.labels == {0: "background", 1: "IRF", 2: "SRF", 3: "PED"}
    cases = {c.case_id: c for c in read_dataset(root).cases}
    assert cases["a"].domain == "spectralis" and cases["b"].domain == "cirrus" and cases["b"].label is None
    assert_same(img_a, read_volume(cases["a"].image))
    assert_same(lab, read_volume(cases["a"].label))
    # a CSV mapping given explicitly wins over domains.json
    (tmp_path / "map.csv").write_text("case,domain\na,topcon\n")
    assert {c.case_id: c.domain for c in read_dataset(root, tmp_path / "map.csv").cases} == {"a": "topcon", "b": None}


def test_nnunet_dataset_errors_name_the_file(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, [("a", make_volume(), make_volume(), None)], {"background": 0, "fluid": 1})
    (root / "labelsTr" / "a.nii.gz").unlink()
    with pytest.raises(InputError, match=r"labelsTr/a\.nii\.gz: label missing"):
        read_dataset(root)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "whole": [1, 2]}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="region-based"):
        read_dataset(root)
    (root / "dataset.json").write_text("{broken")
    with pytest.raises(InputError, match=r"dataset\.json: not valid JSON"):
        read_dataset(root)


def test_find_cases_recognises_every_layout(tmp_path):
    vol = make_volume()
    write_metaimage(tmp_path / "retouch" / "P1" / "oct.mhd", vol)
    write_metaimage(tmp_path / "retouch" / "P1" / "reference.mhd", vol)
    write_metaimage(tmp_path / "retouch" / "P2" / "oct.mhd", vol)
    cs = find_cases(tmp_path / "retouch")
    assert cs.layout == "retouch" and [c.case_id for c in cs.cases] == ["P1", "P2"]
    assert cs.cases[1].label is None and cs.labels == {1: "IRF", 2: "SRF", 3: "PED"}
    assert find_cases(tmp_path / "retouch" / "P1").cases[0].case_id == "P1"
    one = find_cases(tmp_path / "retouch" / "P1" / "oct.mhd")
    assert one.layout == "file" and one.cases[0].case_id == "P1"
    write_volume(tmp_path / "flat" / "x.nii.gz", vol)
    write_volume(tmp_path / "flat" / "y.mhd", vol)
    assert [c.case_id for c in find_cases(tmp_path / "flat").cases] == ["x", "y"]
    write_volume(tmp_path / "imagesTs" / "x_0000.nii.gz", vol)
    assert [c.case_id for c in find_cases(tmp_path / "imagesTs").cases] == ["x"]
    write_bscan_folder(tmp_path / "png", Volume(np.zeros((2, 8, 8), np.uint8)))
    assert find_cases(tmp_path / "png").layout == "bscans" and not is_volume_input(tmp_path / "png")
    assert is_volume_input(tmp_path / "retouch") and is_volume_input(tmp_path / "flat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no volumes here"):
        find_cases(tmp_path / "empty")


class _FakeOCT:
    def __init__(self, slices, pixel_spacing):
        self.volume = slices
        self.pixel_spacing = pixel_spacing
        self.laterality = "R"


def _fake_oct_converter(monkeypatch, volumes):
    readers = types.SimpleNamespace()

    class Reader:
        def __init__(self, path):
            self.path = path

        def read_oct_volume(self, **kwargs):
            return volumes

    readers.E2E = readers.FDS = readers.FDA = readers.IMG = Reader
    package = types.ModuleType("oct_converter")
    package.readers = readers
    monkeypatch.setitem(sys.modules, "oct_converter", package)
    monkeypatch.setitem(sys.modules, "oct_converter.readers", readers)


def test_vendor_files_through_oct_converter_with_spacing_reordered(tmp_path, monkeypatch):
    slices = [np.full((12, 10), i, dtype=np.uint8) for i in range(3)]
    (tmp_path / "scan.e2e").write_bytes(b"x")
    (tmp_path / "scan.fds").write_bytes(b"x")
    _fake_oct_converter(monkeypatch, [_FakeOCT(slices, [0.011, 0.0039, 0.12]), _FakeOCT(slices, None)])
    e2e = read_vendor(tmp_path / "scan.e2e")  # [lateral, axial, slice]
    assert len(e2e) == 2 and e2e[0].shape == (3, 12, 10) and e2e[0].spacing_mm == (0.12, 0.0039, 0.011)
    assert e2e[1].spacing_mm is None and e2e[0].format == "vendor"
    with pytest.raises(InputError, match="holds 2 OCT volumes"):
        read_volume(tmp_path / "scan.e2e")
    _fake_oct_converter(monkeypatch, _FakeOCT(slices, [0.011, 0.12, 0.0039]))  # FDS: [lateral, slice, axial]
    assert read_volume(tmp_path / "scan.fds").spacing_mm == (0.12, 0.0039, 0.011)


def test_vendor_without_oct_converter_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "scan.fds").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "oct_converter", None)  # import fails
    with pytest.raises(InputError, match=r"scan\.fds: .*segclr\[vendor\]"):
        read_volume(tmp_path / "scan.fds")
    with pytest.raises(InputError, match="read-only"):
        write_volume(tmp_path / "out.e2e", make_volume())


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    given = None

if given is not None:
    @settings(max_examples=25, deadline=None)
    @given(shape=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6)),
           dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64]),
           spacing=st.tuples(*[st.floats(1e-4, 10.0)] * 3),
           origin=st.tuples(*[st.floats(-1e3, 1e3)] * 3),
           angles=st.tuples(*[st.floats(-3.1, 3.1)] * 3),
           suffix=st.sampled_from([".mhd", ".mha", ".nii.gz"]),
           seed=st.integers(0, 2**16))
    def test_round_trip_property(tmp_path_factory, shape, dtype, spacing, origin, angles, suffix, seed):
        arr = np.random.default_rng(seed).uniform(-100, 100, shape).astype(dtype)
        vol = Volume(arr, spacing, origin, rotation(*angles))
        path = tmp_path_factory.mktemp("prop") / f"v{suffix}"
        write_volume(path, vol)
        back = read_volume(path)
        assert np.array_equal(back.array, vol.array) and back.array.dtype == vol.array.dtype
        # NIfTI stores geometry in float32; MetaImage in text with full precision
        tol = 1e-4 if suffix == ".nii.gz" else 1e-9
        assert np.allclose(back.spacing_mm, spacing, rtol=tol)
        assert np.allclose(back.origin, origin, rtol=tol, atol=tol * 1e3)
        assert np.allclose(back.direction, vol.direction, atol=tol * 10)
