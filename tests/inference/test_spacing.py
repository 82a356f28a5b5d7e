"""Spacing-aware preprocessing at inference: the same anatomy on another pixel grid, the same prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from segclr.cli import main
from segclr.inference.predict import Predictor
from segclr.io.bundle import load_bundle, save_bundle
from segclr.io.metaimage import write_metaimage
from segclr.io.volumes import Volume

SPACING = (8.0, 10.0)  # um per row, per column of the test B-scans


@pytest.fixture(scope="module")
def aware_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle with a target spacing: 16 um per row, 20 um per column at the working grid."""
    state, meta = load_bundle(tiny_bundle)
    meta = json.loads(json.dumps(meta))
    meta["preprocess"]["target_spacing_um"] = [16.0, 20.0]
    path = tmp_path_factory.mktemp("aware") / "model.safetensors"
    save_bundle(path, state, meta)
    return path


def _bscan(rows: int = 64, cols: int = 80) -> np.ndarray:
    y = np.linspace(0, 1, rows)[:, None]
    x = np.linspace(0, 1, cols)[None, :]
    return (0.5 + 0.35 * np.sin(9 * y) * np.cos(5 * x)).astype(np.float32)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    fg = [(a == k) & (b == k) for k in np.unique(np.concatenate([a.ravel(), b.ravel()])) if k > 0]
    inter = sum(int(f.sum()) for f in fg)
    total = int((a > 0).sum() + (b > 0).sum())
    return 1.0 if total == 0 else 2 * inter / total


def test_a_bscan_at_twice_the_rows_gets_the_same_prediction(aware_bundle):
    p = Predictor(aware_bundle)
    img = _bscan()
    fine = F.interpolate(torch.from_numpy(img)[None, None], size=(128, 80), mode="bilinear",
                         align_corners=False)[0, 0].numpy()  # same anatomy, rows twice as dense
    a = p(img, SPACING)
    b = p(fine, (SPACING[0] / 2, SPACING[1]))
    assert a.shape == img.shape and b.shape == fine.shape
    b_on_a = b[1::2]  # back on the coarse grid (nearest row)
    assert (a > 0).any() and _dice(a, b_on_a) >= 0.95
    # without spacing (height rule) the anatomy is squeezed 2x and the prediction changes more
    c = p(fine)[1::2]
    assert _dice(a, c) < _dice(a, b_on_a)


def test_old_bundles_without_a_target_spacing_still_load_and_use_the_height_rule(tiny_bundle):
    p = Predictor(tiny_bundle)
    assert p.prep.target_spacing_um is None and not p.prep.spacing_aware
    img = _bscan()
    assert np.array_equal(p(img, SPACING), p(img))  # spacing ignored: nothing to resample to
    assert p.spacing_note("x", None) is None


def test_unknown_spacing_warns_once_and_predicts(aware_bundle, tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    for k in range(2):
        Image.fromarray((_bscan() * 255).astype(np.uint8)).save(folder / f"b{k}.png")
    assert main(["predict", "--checkpoint", str(aware_bundle), "--input", str(folder),
                 "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("pixel spacing unknown") == 1 and str(folder) in text
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    # with a volume.json sidecar (z, y, x mm) the spacing is known: no warning
    (folder / "volume.json").write_text(json.dumps({"spacing_mm": [0.1, 0.008, 0.01]}))
    assert main(["predict", "--checkpoint", str(aware_bundle), "--input", str(folder),
                 "--output", str(tmp_path / "out2")]) == 0
    assert "pixel spacing unknown" not in "".join(capsys.readouterr())


@pytest.mark.parametrize("element_spacing", ["0.01 2.0 0.1", "0.0 0.008 0.1", "nan 0.008 0.1"])
def test_a_volume_whose_spacing_makes_no_sense_exits_2_naming_the_file(aware_bundle, tmp_path, element_spacing,
                                                                        capsys):
    vol = tmp_path / "scan.mhd"
    write_metaimage(vol, Volume((_bscan()[None].repeat(2, 0) * 255).astype(np.uint8), (0.1, 0.008, 0.01)))
    header = [line if not line.startswith("ElementSpacing") else f"ElementSpacing = {element_spacing}"
              for line in vol.read_text().splitlines()]  # MetaImage lists x y z
    vol.write_text("\n".join(header) + "\n")
    code = main(["predict", "--checkpoint", str(aware_bundle), "--input", str(vol), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "scan.mhd" in err and "spacing" in err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_spacing_option_overrides_and_is_checked(aware_bundle, tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray((_bscan() * 255).astype(np.uint8)).save(folder / "b0.png")
    assert main(["predict", "--checkpoint", str(aware_bundle), "--input", str(folder), "--output",
                 str(tmp_path / "out"), "--spacing", "8", "10"]) == 0
    assert "pixel spacing unknown" not in "".join(capsys.readouterr())
    assert main(["predict", "--checkpoint", str(aware_bundle), "--input", str(folder), "--output",
                 str(tmp_path / "bad"), "--spacing", "0", "10"]) == 2
    assert "--spacing" in capsys.readouterr().err


@pytest.mark.parametrize("value", [[0.1, None, "x"], "0.1 0.008 0.01", [0.1, 0.008], [0.1, True, 0.01]])
def test_a_bad_volume_json_spacing_is_a_clear_error(aware_bundle, tmp_path, value, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray((_bscan() * 255).astype(np.uint8)).save(folder / "b0.png")
    (folder / "volume.json").write_text(json.dumps({"spacing_mm": value}))
    assert main(["predict", "--checkpoint", str(aware_bundle), "--input", str(folder),
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "volume.json" in err and "spacing" in err
