"""B-scan files: one intensity rule for every pixel type, palettes, alpha, JPEG, and names that collide."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segclr.io.bscans import list_bscans, read_bscan_folder
from segclr.io.cases import find_cases
from segclr.io.images import InputError, read_image, read_mask, reset_notes
from segclr.io.volumes import read_volume


@pytest.fixture(autouse=True)
def _fresh_notes():
    reset_notes()


def _grey(shape=(32, 40), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def test_float_and_int32_tiffs_follow_the_volume_rule(tmp_path, capsys):
    g = _grey()
    Image.fromarray(g).save(tmp_path / "b.png")
    png = read_image(tmp_path / "b.png")
    Image.fromarray(g.astype(np.float32), mode="F").save(tmp_path / "f255.tif")   # float holding 0..255
    out = read_image(tmp_path / "f255.tif")
    assert out.min() == 0.0 and out.max() == 1.0            # min-max per B-scan, not 0..255 fed as is
    lo, hi = float(g.min()), float(g.max())
    assert np.allclose(out, (g.astype(np.float32) - lo) / (hi - lo), atol=1e-6)
    assert np.allclose(out * (hi - lo) / 255 + lo / 255, png, atol=1e-6)
    assert "f255.tif: float32 intensities span [" in capsys.readouterr().err
    unit = (g / 255.0).astype(np.float32)
    Image.fromarray(unit, mode="F").save(tmp_path / "unit.tif")                # already in [0, 1]: as is
    assert np.array_equal(read_image(tmp_path / "unit.tif"), unit)
    db = (20 * np.log10(g.astype(np.float32) + 1) - 40).astype(np.float32)      # dB-scaled, negative values
    Image.fromarray(db, mode="F").save(tmp_path / "db.tif")
    out = read_image(tmp_path / "db.tif")
    assert out.min() == 0.0 and out.max() == 1.0
    Image.fromarray(g.astype(np.int32) * 1000).save(tmp_path / "i32.tif")       # 32-bit integers
    out = read_image(tmp_path / "i32.tif")
    assert out.max() == 1.0 and np.allclose(out, (g - lo) / (hi - lo), atol=1e-6)
    u16 = g.astype(np.uint16) * 257
    Image.fromarray(u16).save(tmp_path / "u16.tif")                             # 16 bit: / 65535 as before
    assert np.allclose(read_image(tmp_path / "u16.tif"), png, atol=1e-6)


def test_rescaling_is_noted_once_per_folder(tmp_path, capsys):
    for i in range(3):
        Image.fromarray(_grey(seed=i).astype(np.float32), mode="F").save(tmp_path / f"b{i}.tif")
    vol = read_bscan_folder(tmp_path)
    assert vol.array.min() == 0.0 and vol.array.max() == 1.0
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "min-max scaled to [0, 1] per B-scan" in err


def _palette(path, indices, palette_rgb):
    im = Image.fromarray(indices.astype(np.uint8), mode="P")
    im.putpalette(np.asarray(palette_rgb, np.uint8).ravel().tolist())
    im.save(path)


def test_palette_masks_are_read_by_index(tmp_path):
    idx = np.zeros((16, 16), np.uint8)
    idx[2:6, 2:6], idx[8:10, 8:12], idx[12:, :3] = 1, 2, 3
    colours = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)] + [(0, 0, 0)] * 252
    _palette(tmp_path / "m.png", idx, colours)
    assert np.array_equal(read_mask(tmp_path / "m.png", 4), idx)    # not luminance values 76, 150, 29


def test_colour_palette_images_are_refused_grey_palettes_read(tmp_path):
    idx = np.tile(np.arange(16, dtype=np.uint8), (16, 1))
    colours = [(i * 16, 255 - i * 16, 0) for i in range(16)] + [(0, 0, 0)] * 240
    _palette(tmp_path / "c.png", idx, colours)
    with pytest.raises(InputError, match=r"c.png: colour image; B-scans must be grayscale"):
        read_image(tmp_path / "c.png")
    greys = [(i * 17, i * 17, i * 17) for i in range(16)] + [(0, 0, 0)] * 240
    _palette(tmp_path / "g.png", idx, greys)
    assert np.allclose(read_image(tmp_path / "g.png"), idx * 17 / 255.0)


def test_rgba_alpha_is_dropped_with_a_note(tmp_path, capsys):
    g = _grey()
    rgba = np.dstack([g, g, g, np.full_like(g, 128)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert np.allclose(read_image(tmp_path / "a.png"), g / 255.0)
    assert "a.png: its alpha channel (transparency) is ignored" in capsys.readouterr().err


def test_jpeg_bscans_are_read_with_a_lossy_note_and_jpeg_masks_refused(tmp_path, capsys):
    g = _grey((64, 64))
    Image.fromarray(g).save(tmp_path / "a.png")
    Image.fromarray(g).save(tmp_path / "b.jpg", quality=95)
    Image.fromarray(np.dstack([g] * 3)).save(tmp_path / "c.jpeg", quality=95)   # grey content saved as RGB
    assert [f.name for f in list_bscans(tmp_path)] == ["a.png", "b.jpg", "c.jpeg"]   # not skipped
    vol = read_volume(tmp_path)
    assert vol.shape == (3, 64, 64) and np.abs(vol.array[1] - g / 255.0).mean() < 0.02
    err = capsys.readouterr().err
    assert err.count("JPEG B-scans are lossy") == 1
    with pytest.raises(InputError, match=r"b.jpg: JPEG mask; .* save masks as PNG"):
        read_mask(tmp_path / "b.jpg", 4)


def test_two_bscans_with_one_name_are_refused_naming_both(tmp_path):
    Image.fromarray(_grey()).save(tmp_path / "b01.png")
    Image.fromarray(_grey()).save(tmp_path / "b01.tif")
    with pytest.raises(InputError, match=r"b01.png: b01.tif has the same name 'b01'; their masks would both be"):
        list_bscans(tmp_path)


def test_other_image_formats_are_not_skipped_silently(tmp_path, capsys):
    Image.fromarray(_grey()).save(tmp_path / "a.png")
    Image.fromarray(_grey()).save(tmp_path / "b.bmp")
    assert [f.name for f in list_bscans(tmp_path)] == ["a.png"]
    assert "skipping 1 image(s) in formats other than PNG/TIFF/JPEG (b.bmp)" in capsys.readouterr().err


def test_a_single_bscan_file_is_a_one_slice_case(tmp_path):
    Image.fromarray(_grey()).save(tmp_path / "one.png")
    cases = find_cases(tmp_path / "one.png")
    assert cases.layout == "bscans" and cases.cases[0].case_id == "one"
    assert read_volume(tmp_path / "one.png").shape == (1, 32, 40)
