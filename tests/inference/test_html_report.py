"""``segclr predict --report`` (self-contained HTML) and the packaged-model mechanism (``segclr models``,
``predict`` without ``--checkpoint``)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from segclr.cli import main
from segclr.inference import html_report, packaged
from segclr.inference.html_report import (HtmlReport, bscan_ranges, enface_thickness, map_size, report_path,
                                          shift_sentence)
from segclr.io.images import write_image
from segclr.io.volumes import Volume, write_volume

SPACING = (0.12, 0.0039, 0.0113)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """Three small .mhd volumes: two with spacing (different slice counts), one without."""
    root = tmp_path_factory.mktemp("vols") / "in"
    rng = np.random.default_rng(0)
    for k, spacing in enumerate([SPACING, SPACING, None]):
        rows = np.linspace(0, 1, 48)[None, :, None]
        arr = 0.5 + 0.35 * np.sin(rows * (9 + k)) + 0.15 * rng.standard_normal((5 + k, 48, 64))
        write_volume(root / f"case{k}.mhd", Volume((np.clip(arr, 0, 1) * 255).astype(np.uint8), spacing))
    return root


def _images(page: str) -> list[tuple[str, bytes]]:
    return [(m.group(1), base64.b64decode(m.group(2)))
            for m in re.finditer(r'src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_of_a_volume_run(tiny_bundle, volumes, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--input", str(volumes), "--output", str(out),
                 "--report"]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    # self-contained: no file or network reference besides data: URIs and in-page anchors
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "http://" not in page and "https://" not in page
    # one section and one table row per volume, linked
    assert page.count('<section class=vol id=v') == 3
    assert len(re.findall(r'<a href="#v\d">case\d</a>', page)) == 3
    # research-use notice and the (empty) model summary
    assert "For research use only" in page and "Measured Dice: none recorded" in page
    # every embedded image decodes: per volume one map + up to 3 B-scans
    imgs = _images(page)
    assert 3 <= len(imgs) <= 12
    for mime, data in imgs:
        im = Image.open(io.BytesIO(data))
        im.load()
        assert im.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[mime]
        assert max(im.size) <= max(html_report.THUMB_WIDTH, html_report.MAP_SIZE)
    # no shift statistics in this bundle: said in words
    assert page.count("No domain-shift check") == 3
    # nl for volumes with spacing, n/a for the one without; physical aspect only where known
    csv_rows = (out / "fluid_volumes.csv").read_text().splitlines()
    assert len(csv_rows) == 4
    # the post-processing is recorded: none in this bundle (CSV: last column)
    none = "none (the model bundle stores no post-processing)"
    assert csv_rows[0].endswith(",postprocess") and all(r.endswith(f",{none}") for r in csv_rows[1:])
    assert f"<b>Post-processing:</b> {none}</p>" in page
    assert page.count("true physical aspect") == 2 and "voxel spacing unknown: not to physical scale" in page
    assert "&micro;m" in page and "Voxel spacing unknown: no volumes in nl" in page


def test_report_refuses_to_overwrite_before_predicting(tiny_bundle, volumes, tmp_path, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "report.html").write_text("old")
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--input", str(volumes), "--output", str(out),
                 "--report"]) == 2
    assert "report exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # nothing predicted


def test_report_of_a_single_output_file_and_an_explicit_path(tiny_bundle, volumes, tmp_path):
    assert report_path(tmp_path / "pred.nii.gz") == tmp_path / "pred_report.html"
    assert report_path(tmp_path / "masks") == tmp_path / "masks" / "report.html"
    assert report_path(tmp_path / "masks", tmp_path / "r.html") == tmp_path / "r.html"
    target = tmp_path / "one.mhd"
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--input", str(volumes / "case0.mhd"),
                 "--output", str(target), "--report", str(tmp_path / "mine.html")]) == 0
    assert (tmp_path / "mine.html").read_text().count("<section class=vol") == 1


def test_report_of_a_bscan_folder(tiny_bundle, tmp_path, monkeypatch):
    from segclr.inference.predict import Predictor

    loads = []
    init = Predictor.__init__
    monkeypatch.setattr(Predictor, "__init__", lambda self, *a, **k: (loads.append(a), init(self, *a, **k))[1])
    folder = tmp_path / "bscans"
    rng = np.random.default_rng(1)
    for i in range(4):
        write_image(folder / f"b{i:02d}.png", np.clip(0.5 + 0.2 * rng.standard_normal((40, 56)), 0, 1))
    (folder / "volume.json").write_text(json.dumps({"spacing_mm": list(SPACING)}))
    out = tmp_path / "masks"
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--input", str(folder), "--output", str(out),
                 "--report"]) == 0
    page = (out / "report.html").read_text()
    assert page.count("<section class=vol") == 1 and "true physical aspect" in page
    assert re.search(r"B-scan \d \(b0\d\.png\)", page)  # file names shown with the B-scan numbers
    assert len(loads) == 1  # the model loaded for the masks also makes the report
    assert "<b>Post-processing:</b> none (the model bundle stores no post-processing)" in page


def test_volume_section_contents():
    masks = np.zeros((4, 20, 30), np.uint8)
    masks[1, 5:9, 3:6] = 1          # 4 rows of class 1 in B-scan 2
    masks[3, 2:12, 10:20] = 2       # the most fluid: B-scan 4
    masks[3, 0:2, 0:2] = 1
    images = [np.full((20, 30), 0.5, np.float32)] * 4
    rep = HtmlReport(["IRF", "SRF"], {"name": "m", "notice": "research only", "dice": {}})
    row = rep.add_volume("c", images, list(masks), SPACING, {"shift_score": 2.0, "shift_threshold": 1.0})
    assert row["IRF_bscans"] == 2 and row["SRF_bscans"] == 1 and row["total_fluid_bscans"] == 2
    assert row["IRF_nl"] == pytest.approx(16 * np.prod(SPACING) * 1000)
    section = rep.entries[0].section
    assert "2, 4" in section and "B-scan 4" in section.split("B-scan 2")[0]  # most fluid first
    assert "Warning: this volume looks unlike" in section and "shift score 2.00" in section
    thick = enface_thickness(masks, 3.9)
    assert thick.shape == (4, 30) and thick[3, 15] == pytest.approx(10 * 3.9) and thick[1, 4] == pytest.approx(4 * 3.9)
    page = rep.html()
    assert "<th data-type=num" in page and "unfamiliar" in page


def test_map_aspect_and_words():
    # 49 B-scans 0.12 mm apart over 6 mm, 512 A-scans x 11.7 um = 6 mm: square
    w, h, physical = map_size(49, 512, (0.1225, 0.0039, 0.01172))
    assert physical and abs(w - h) <= 1 and max(w, h) == html_report.MAP_SIZE
    w, h, physical = map_size(11, 768, (0.12, 0.0039, 0.0113))  # 1.32 mm x 8.7 mm: wide
    assert physical and w == html_report.MAP_SIZE and h == round(11 * 0.12 / (768 * 0.0113) * 200)
    assert map_size(11, 768, None)[2] is False
    assert bscan_ranges([0, 1, 2, 5, 7, 8]) == "1-3, 6, 8-9" and bscan_ranges([]) == "none"
    assert shift_sentence(0.5, 1.0)[0] == "ok" and shift_sentence(1.5, 1.0)[0] == "flag"
    assert shift_sentence(None, None)[0] == "unknown"


# ------------------------------------------------------------------------ packaged models
def test_shipped_slot_is_listed_and_predict_says_so_when_empty(tmp_path, capsys):
    models = packaged.list_models()
    assert any(m.default for m in models)
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    default = next(m for m in models if m.default)
    assert default.name in listing and "(default)" in listing
    if not default.trained:
        assert "not yet trained" in listing
        rc = main(["predict", "--input", str(tmp_path), "--output", str(tmp_path / "o")])
        assert rc == 2 and "no packaged model is installed yet" in capsys.readouterr().err
    else:
        assert "measured Dice" in listing and "research use only" in listing.lower()


@pytest.fixture
def fake_models(tiny_bundle, tmp_path, monkeypatch):
    root = tmp_path / "models"
    slot = root / "tiny-test"
    slot.mkdir(parents=True)
    shutil.copyfile(tiny_bundle, slot / "model.safetensors")
    info = {"name": "tiny-test", "default": True, "status": "interim", "training_data": "nothing real",
            "dice": {"spectralis": {"dice": 0.5, "pooled": 0.6, "n": 22}},
            "dice_source": "test patients 9-10", "regenerate": "python make_it.py"}
    (slot / "packaged.json").write_text(json.dumps(info))
    (root / "empty").mkdir()
    (root / "empty" / "packaged.json").write_text(json.dumps({"name": "empty"}))
    monkeypatch.setattr(packaged, "MODELS_DIR", root)
    return slot


def test_predict_without_checkpoint_uses_the_default_model(fake_models, volumes, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", "--input", str(volumes / "case0.mhd"), "--output", str(out), "--report"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "packaged model" in line]
    assert len(notes) == 1 and "tiny-test" in notes[0] and "research use only" in notes[0]
    page = (out / "report.html").read_text()
    assert "Model: tiny-test" in page and "nothing real" in page and "0.500" in page and "interim" in page
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "tiny-test (default): interim" in listing and "per B-scan 0.500" in listing
    assert "empty: not yet trained" in listing


def test_packaged_card_summary_falls_back_to_the_bundle(tiny_bundle):
    s = packaged.card_summary(tiny_bundle)
    assert s["mode"] == "supervised" and s["dice"] == {} and "research use" in s["notice"].lower()
    assert "spectralis" in s["training_data"]
