"""NIfTI units and transforms, 2D and odd MetaImage files, sheared voxels, and writes a kill cannot tear.

SimpleITK is the reference for geometry: segclr must place every voxel where ITK-based tools do.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from segclr.io import atomic, metaimage
from segclr.io.images import reset_notes
from segclr.io.metaimage import read_metaimage, write_metaimage
from segclr.io.volumes import Volume, read_volume, write_volume

sitk = pytest.importorskip("SimpleITK")
nib = pytest.importorskip("nibabel")


def _nifti(path, affine_q=None, qcode=1, affine_s=None, scode=1, unit="mm", shape=(7, 6, 5)):
    """A NIfTI file (array in nibabel's (i, j, k) order) with the given transforms and unit."""
    data = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    image = nib.Nifti1Image(data, None)
    given = affine_q if affine_q is not None else affine_s
    image.header.set_zooms(tuple(np.linalg.norm(given[:3, :3], axis=0)))  # pixdim as writers set it
    image.set_qform(affine_q, code=qcode if affine_q is not None else 0)
    image.set_sform(affine_s, code=scode if affine_s is not None else 0)
    image.header.set_xyzt_units(unit)
    nib.save(image, str(path))
    return path


def _affine(zooms, offset):
    a = np.diag([*zooms, 1.0])
    a[:3, 3] = offset
    return a


def _sitk_geometry(path):
    img = sitk.ReadImage(str(path))
    return np.array(img.GetSpacing()), np.array(img.GetOrigin()), np.array(img.GetDirection()).reshape(3, 3)


def _assert_like_sitk(volume: Volume, path):
    spacing, origin, direction = _sitk_geometry(path)
    sp, org, d = volume.itk_geometry()
    assert np.allclose(sp, spacing, rtol=1e-6) and np.allclose(org, origin, atol=1e-6)
    assert np.allclose(d, direction, atol=1e-6)


@pytest.mark.parametrize("unit,factor", [("micron", 1e-3), ("mm", 1.0), ("meter", 1e3)])
def test_nifti_spatial_unit_is_honoured_and_kept_on_writing(tmp_path, unit, factor):
    a = _affine((3.9, 11.3, 120.0), (10.0, -20.0, 30.0))       # e.g. micrometres for an OCT volume
    src = _nifti(tmp_path / "in.nii.gz", a, 1, a, 1, unit)
    vol = read_volume(src)
    assert vol.spacing_mm == pytest.approx((120.0 * factor, 11.3 * factor, 3.9 * factor), rel=1e-6)
    assert vol.voxel_mm3 == pytest.approx(3.9 * 11.3 * 120.0 * factor**3, rel=1e-5)
    _assert_like_sitk(vol, src)
    out = write_volume(tmp_path / "out.nii.gz", vol.with_array(np.zeros(vol.shape, np.uint8)))
    assert nib.load(str(out)).header.get_xyzt_units()[0] == unit   # written in the input's unit
    assert np.allclose(_sitk_geometry(out)[0], _sitk_geometry(src)[0], rtol=1e-6)
    assert np.allclose(_sitk_geometry(out)[1], _sitk_geometry(src)[1], atol=1e-6)
    assert read_volume(out).same_geometry(vol, rtol=1e-6, atol=1e-9)


def test_nifti_unknown_unit_reads_as_mm_with_a_note(tmp_path, capsys):
    reset_notes()
    a = _affine((0.5, 0.6, 0.7), (1, 2, 3))
    vol = read_volume(_nifti(tmp_path / "u.nii", a, 1, a, 1, "unknown"))
    assert vol.spacing_mm == pytest.approx((0.7, 0.6, 0.5))
    assert "u.nii: NIfTI spatial unit unknown (xyzt_units); read as mm" in capsys.readouterr().err


Q = _affine((0.5, 0.6, 0.7), (1.0, 2.0, 3.0))
S = _affine((0.5, 0.6, 0.7), (10.0, 20.0, 30.0))


@pytest.mark.parametrize("qcode,scode", [(1, 1), (1, 2), (1, 3), (2, 2), (2, 1), (0, 2), (1, 0)])
def test_disagreeing_qform_and_sform_follow_itk_and_the_output_keeps_the_mask_in_place(tmp_path, qcode, scode):
    src = _nifti(tmp_path / "in.nii", Q if qcode else None, qcode, S if scode else None, scode)
    vol = read_volume(src)
    _assert_like_sitk(vol, src)
    out = write_volume(tmp_path / "mask.nii.gz", vol.with_array(np.ones(vol.shape, np.uint8)))
    header = nib.load(str(out)).header
    assert np.allclose(header.get_qform(), header.get_sform()) and header["qform_code"] == header["sform_code"] == 1
    assert np.allclose(_sitk_geometry(out)[1], _sitk_geometry(src)[1], atol=1e-5)  # same place in ITK viewers


def test_nifti_without_transforms_is_placed_as_itk_places_it(tmp_path):
    image = nib.Nifti1Image(np.zeros((5, 6, 7), np.uint8), None)
    image.header.set_zooms((0.5, 0.6, 0.7))
    image.set_qform(None, code=0)
    image.set_sform(None, code=0)
    nib.save(image, str(tmp_path / "bare.nii"))
    _assert_like_sitk(read_volume(tmp_path / "bare.nii"), tmp_path / "bare.nii")


def test_sheared_affine_voxel_volume_is_the_determinant(tmp_path):
    sheared = np.array([[0.5, 0.3, 0.0, 1.0], [0.0, 0.6, 0.0, 2.0], [0.0, 0.0, 0.7, 3.0], [0, 0, 0, 1.0]])
    vol = read_volume(_nifti(tmp_path / "shear.nii", None, 0, sheared, 1))
    assert vol.voxel_mm3 == pytest.approx(abs(np.linalg.det(sheared[:3, :3])), rel=1e-6)  # 0.21, not 0.2449...
    assert vol.voxel_mm3 < float(np.prod(vol.spacing_mm)) * 0.9
    back = read_volume(write_volume(tmp_path / "back.nii.gz", vol))
    assert back.voxel_mm3 == pytest.approx(vol.voxel_mm3, rel=1e-6)


def test_2d_metaimage_gives_a_2d_output(tmp_path):
    img = sitk.GetImageFromArray(np.arange(48, dtype=np.uint8).reshape(6, 8))
    img.SetSpacing((0.0113, 0.0039))
    img.SetOrigin((1.5, -2.0))
    sitk.WriteImage(img, str(tmp_path / "b.mhd"))
    vol = read_volume(tmp_path / "b.mhd")
    assert vol.shape == (1, 6, 8)
    write_volume(tmp_path / "pred.mhd", vol.with_array(np.zeros(vol.shape, np.uint8)))
    back = sitk.ReadImage(str(tmp_path / "pred.mhd"))
    assert back.GetDimension() == 2 and back.GetSize() == (8, 6)
    assert np.allclose(back.GetSpacing(), (0.0113, 0.0039)) and np.allclose(back.GetOrigin(), (1.5, -2.0))
    two_d = tmp_path / "nii2d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 6), np.uint8), np.eye(4)), str(two_d))
    write_volume(tmp_path / "pred2d.nii.gz", read_volume(two_d))
    assert sitk.ReadImage(str(tmp_path / "pred2d.nii.gz")).GetDimension() == 2


def test_metaimage_data_file_name_with_spaces_is_one_file(tmp_path):
    vol = Volume(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), (0.12, 0.0039, 0.0113))
    write_metaimage(tmp_path / "scan 01 OD.mhd", vol)
    assert "ElementDataFile = scan 01 OD.raw" in (tmp_path / "scan 01 OD.mhd").read_text()
    back = metaimage._read_builtin(tmp_path / "scan 01 OD.mhd")   # the built-in reader: no SimpleITK fallback
    assert np.array_equal(back.array, vol.array)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "scan 01 OD.mhd"))), vol.array)


def test_a_kill_between_renames_never_leaves_an_old_header_beside_new_data(tmp_path, monkeypatch):
    old = Volume(np.zeros((2, 4, 4), np.uint8), (1, 1, 1))
    new = Volume(np.full((2, 4, 4), 7, np.uint8), (1, 1, 1))
    write_metaimage(tmp_path / "p.mhd", old)
    real_replace = os.replace
    calls = []

    def replace_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the data and header renames")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_metaimage(tmp_path / "p.mhd", new)
    monkeypatch.undo()
    assert [os.path.basename(c) for c in calls] == ["p.raw", "p.mhd"]      # data first, header last
    assert not (tmp_path / "p.mhd").exists()  # the old header went before the new data arrived
    assert not list(tmp_path.glob(".*.tmp"))
    write_metaimage(tmp_path / "p.mhd", new)
    assert np.array_equal(read_metaimage(tmp_path / "p.mhd").array, new.array)


def test_stale_temp_files_of_dead_processes_are_cleaned_on_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host = atomic.temp_prefix("x").split("segclr-")[1].rsplit("-", 2)[0]
    stale = tmp_path / f".p.raw.segclr-{host}-{dead}-abc123_x.tmp"
    mine = tmp_path / f"{atomic.temp_prefix('q.raw')}zzz.tmp"          # a live writer (this process)
    foreign = tmp_path / f".p.raw.segclr-otherhost-{dead}-abc123.tmp"   # another machine's: cannot judge
    other_tool = tmp_path / ".p.raw.k2j3h4.tmp"
    for f in (stale, mine, foreign, other_tool):
        f.write_bytes(b"partial")
    atomic._CLEANED.discard(tmp_path.resolve())
    write_metaimage(tmp_path / "p.mhd", Volume(np.zeros((1, 4, 4), np.uint8)))
    assert not stale.exists() and mine.exists() and foreign.exists() and other_tool.exists()
    assert atomic.temp_prefix("p.raw").startswith(f".p.raw.segclr-{host}-{os.getpid()}-")
