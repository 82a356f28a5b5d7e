"""Post-processing of predicted masks: small components, fluid outside the retina, bundle settings, off switch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segclr.cli import main
from segclr.data.domains import load_spectralis
from segclr.inference.postprocess import apply_postprocess, describe_postprocess, remove_small_components, retina_mask
from segclr.inference.predict import Predictor
from segclr.io.bundle import load_bundle, save_bundle
from segclr.io.images import read_mask, write_mask


def _with_postprocess(bundle, folder, params: dict | None):
    state, meta = load_bundle(bundle)
    meta = json.loads(json.dumps(meta))
    if params is not None:
        meta["postprocess"] = params
    path = folder / "model.safetensors"
    save_bundle(path, state, meta)
    return path


def _band_bscan(rows: int = 96, cols: int = 128, seed: int = 0) -> np.ndarray:
    """A synthetic B-scan: dark vitreous, a bright retina band (rows 35-64 of 96) with a dark
    fluid pocket (rows 45-54, columns 50-69 of 128), dark below; other sizes scaled."""
    rng = np.random.default_rng(seed)
    img = 0.08 + 0.04 * rng.random((rows, cols))
    band = slice(rows * 35 // 96, rows * 65 // 96)
    img[band] = 0.55 + 0.1 * rng.random(img[band].shape)
    img[rows * 45 // 96:rows * 55 // 96, cols * 50 // 128:cols * 70 // 128] = 0.1
    return img.astype(np.float32)


# ------------------------------------------------------------------------------------- small components

def test_a_component_of_exactly_min_px_is_kept_and_one_pixel_less_is_removed():
    mask = np.zeros((12, 12), dtype=np.uint8)
    mask[1, 1:6] = 1                               # 5 pixels in a row
    mask[6, 6] = mask[7, 7] = mask[8, 8] = 1       # 3 pixels touching only diagonally: one 8-connected component
    assert remove_small_components(mask, 5, [1])[1, 1:6].all()
    assert not remove_small_components(mask, 6, [1])[1, 1:6].any()
    kept = remove_small_components(mask, 3, [1])
    assert kept[6, 6] == kept[7, 7] == kept[8, 8] == 1
    assert remove_small_components(mask, 4, [1]).sum() == 5
    assert np.array_equal(remove_small_components(mask, 0, [1]), mask)  # 0 keeps everything


def test_components_are_counted_per_class_and_other_classes_are_left_alone():
    mask = np.zeros((6, 10), dtype=np.uint8)
    mask[2, 0:3] = 1
    mask[2, 3:6] = 2  # touches the class-1 run, but is its own 3-pixel component
    out = remove_small_components(mask, 4, [1])
    assert out[2, 0:3].sum() == 0 and (out[2, 3:6] == 2).all()  # class 2 not a fluid class here
    assert remove_small_components(mask, 4, [1, 2]).sum() == 0
    assert mask[2, 0] == 1  # the input is not modified


def test_min_component_px_is_scaled_to_the_input_grid():
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[1, 0:10] = 1   # 10 input pixels
    mask[5, 0:9] = 1    # 9 input pixels
    # 3 working pixels x 10/3 input pixels per working pixel = 10 input pixels
    out = apply_postprocess(mask, np.zeros((10, 20), np.float32), {"min_component_px": 3}, scale=10 / 3)
    assert out[1].sum() == 10 and out[5].sum() == 0
    same = apply_postprocess(mask, np.zeros((10, 20), np.float32), {"min_component_px": 3, "retina_only": False})
    assert np.array_equal(same, mask)  # scale 1: both runs are longer than 3
    assert np.array_equal(apply_postprocess(mask, None, None), mask)  # no parameters: nothing happens


# ------------------------------------------------------------------------------------------ retina mask

def test_fluid_outside_a_synthetic_retina_band_is_removed():
    img = _band_bscan()
    retina = retina_mask(img)
    assert retina[40:60].all() and retina[45:55, 50:70].all()  # the band and its dark pocket
    assert not retina[:20].any() and not retina[85:].any()      # vitreous and the dark depth
    mask = np.zeros(img.shape, dtype=np.uint8)
    mask[45:55, 50:70] = 1   # fluid in the pocket
    mask[5:15, 10:30] = 1    # "fluid" in the vitreous
    mask[88:94, 90:110] = 1  # and far below the band
    out = apply_postprocess(mask, img, {"retina_only": True})
    assert out[45:55, 50:70].all() and out.sum() == 200


@pytest.mark.parametrize("where", ["top_left", "bottom_right", "vitreous_middle"])
def test_a_bright_glyph_or_text_box_in_a_dark_corner_is_not_retina(where):
    img = _band_bscan(rows=192, cols=256)
    img[35:65] = 0.08   # move the band down: rows 70-129
    img[70:130] = 0.5
    box = {"top_left": (slice(3, 15), slice(4, 40)), "bottom_right": (slice(176, 189), slice(200, 250)),
           "vitreous_middle": (slice(20, 32), slice(100, 140))}[where]
    glyph = np.zeros((12, 36), dtype=bool)
    glyph[::3] = True
    glyph[:, ::4] = True  # a grid of strokes, like burned-in text
    region = img[box]
    region[:glyph.shape[0], :glyph.shape[1]][glyph[:region.shape[0], :region.shape[1]]] = 1.0
    retina = retina_mask(img)
    assert not retina[box].any()
    assert retina[75:125].all()


@pytest.fixture(scope="module")
def training_bscans():
    """B-scans with fluid from training patients only (never the test patients 9 and 10)."""
    vols = load_spectralis(patients=(1, 4, 6, 8))
    return [(img, m) for v in vols for img, m in zip(v.images, v.masks) if m.any()][::4]


def test_retina_mask_holds_the_reference_fluid_of_training_bscans(training_bscans):
    assert len(training_bscans) >= 6
    inside = total = 0
    for img, ref in training_bscans:
        retina = retina_mask(img)
        fluid = ref > 0
        inside += int((fluid & retina).sum())
        total += int(fluid.sum())
        assert retina.mean() < 0.7
    assert inside / total >= 0.99


def test_retina_mask_ignores_a_text_box_pasted_into_a_training_bscan(training_bscans):
    img = training_bscans[0][0].copy()
    before = retina_mask(img)
    dark = np.argwhere(~before[:, :60].any(axis=1)).ravel()
    rows = dark[dark > 30][:14]  # a dark stretch below the top fill, left edge
    assert len(rows) == 14
    img[rows[0]:rows[-1], 5:55] = 0.0
    img[rows[0] + 2:rows[-1] - 2, 8:52:3] = 1.0  # white vertical strokes on a black box
    after = retina_mask(img)
    assert not after[rows[0]:rows[-1], 5:55].any()
    assert (after != before).mean() < 0.01


def test_export_overlays_drawn_into_training_bscans_stay_outside_the_mask(training_bscans):
    from segclr.evaluation.overlay_check import overlay_variant

    inside = total = 0
    for k, (img, ref) in enumerate(training_bscans):
        drawn, overlay = overlay_variant(img, seed=100 + k)  # text line, corner glyph, framed inset, scale bar
        retina = retina_mask(drawn)
        inside += int((overlay & retina).sum())
        total += int(overlay.sum())
        fluid = (ref > 0) & ~overlay  # fluid under an overlay cannot be seen any more
        assert (fluid & retina).sum() >= 0.99 * fluid.sum()
    assert inside <= 0.01 * total


def test_a_mask_without_fluid_skips_the_tissue_mask(monkeypatch):
    import segclr.inference.postprocess as pp

    def boom(image):
        raise AssertionError("retina_mask should not run on a mask without fluid")

    monkeypatch.setattr(pp, "retina_mask", boom)
    empty = np.zeros((32, 40), dtype=np.uint8)
    out = apply_postprocess(empty, np.random.default_rng(0).random((32, 40)),
                            {"min_component_px": 20, "retina_only": True})
    assert out.dtype == empty.dtype and not out.any() and out is not empty


def test_retina_mask_edge_cases():
    assert not retina_mask(np.zeros((40, 50), np.float32)).any()
    assert retina_mask(np.full((40, 50), np.nan, np.float32)).shape == (40, 50)
    with pytest.raises(ValueError, match="one B-scan"):
        retina_mask(np.zeros((2, 40, 50), np.float32))


# ------------------------------------------------------------------------------------- Predictor, CLI

def _raw(predictor: Predictor, img: np.ndarray) -> np.ndarray:
    return torch.max(predictor.probabilities(img), dim=0).indices.numpy().astype(np.uint8)


def test_a_bundle_without_postprocess_predicts_as_before(tiny_bundle):
    p = Predictor(tiny_bundle)
    img = _band_bscan(64, 80)
    assert p.postprocess_params == {"min_component_px": 0, "retina_only": False}
    assert p.applied_postprocess is None
    assert np.array_equal(p(img), _raw(p, img))


def test_bundle_postprocess_changes_the_prediction_and_can_be_turned_off(tiny_bundle, tmp_path):
    params = {"min_component_px": 4, "retina_only": True}
    bundle = _with_postprocess(tiny_bundle, tmp_path, params)
    p = Predictor(bundle)
    assert p.applied_postprocess == params
    img = _band_bscan(64, 80)
    raw = _raw(p, img)
    out = p(img)
    assert len(np.unique(raw)) > 1  # the tiny model predicts fluid, so the comparison means something
    assert not np.array_equal(out, raw)
    # 64 x 80 -> 32 x 40 working grid (the bundle's input height 32): 4 input pixels per working pixel
    assert np.array_equal(out, apply_postprocess(raw, img, params, scale=4.0, fluid_classes=[1, 2]))
    assert np.array_equal(p.predict_batch(np.stack([img, img]))[1], out)
    assert np.array_equal(p.postprocess_masks(raw[None], img[None], None)[0], out)  # the bundle's params
    assert np.array_equal(p.postprocess_masks(raw[None], img[None], None, {"min_component_px": 0})[0], raw)
    off = Predictor(bundle, postprocess=False)
    assert off.applied_postprocess is None and np.array_equal(off(img), raw)
    p.postprocess = False
    assert np.array_equal(p(img), raw)
    assert Predictor(bundle).applied_postprocess == params  # a fresh predictor: the bundle's settings again


def test_cli_predict_and_evaluate_apply_the_bundle_postprocess_unless_told_not_to(tiny_bundle, tmp_path, capsys):
    from PIL import Image

    bundle = _with_postprocess(tiny_bundle, tmp_path, {"min_component_px": 6, "retina_only": True})
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    bscans = [_band_bscan(64, 80, seed) for seed in range(2)]
    for i, img in enumerate(bscans):
        Image.fromarray((img * 255).round().astype(np.uint8)).save(images / f"b{i}.png")
        ref = np.zeros((64, 80), np.uint8)
        ref[30:36, 31:43] = 1  # the pocket
        write_mask(masks / f"b{i}.png", ref)
    assert main(["predict", "--checkpoint", str(bundle), "--input", str(images), "--output", str(tmp_path / "pp")]) == 0
    assert main(["predict", "--checkpoint", str(bundle), "--input", str(images), "--output", str(tmp_path / "raw"),
                 "--no-postprocess"]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote 2 masks") == 2 and "postprocess" not in out  # nothing extra printed
    p = Predictor(bundle)
    from segclr.io.images import read_image

    for i in range(2):
        img = read_image(images / f"b{i}.png")
        assert np.array_equal(read_mask(tmp_path / "pp" / f"b{i}.png", 3), p(img))
        assert np.array_equal(read_mask(tmp_path / "raw" / f"b{i}.png", 3), _raw(p, img))
    assert not np.array_equal(read_mask(tmp_path / "pp" / "b0.png", 3), read_mask(tmp_path / "raw" / "b0.png", 3))

    summaries = []
    for extra in ([], ["--no-postprocess"]):
        out_json = tmp_path / f"summary{len(extra)}.json"
        assert main(["evaluate", "--checkpoint", str(bundle), "--images", str(images), "--masks", str(masks),
                     "--out", str(out_json), *extra]) == 0
        summaries.append(json.loads(out_json.read_text()))
    assert summaries[0]["postprocess"] == {"min_component_px": 6, "retina_only": True}
    assert summaries[1]["postprocess"] is None
    assert summaries[0]["metric_per_case"] != summaries[1]["metric_per_case"]


def test_help_names_the_flag(capsys):
    for command in ("predict", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--no-postprocess" in text and "model bundle" in text


def test_cli_evaluate_on_volumes_honours_no_postprocess(tiny_bundle, tmp_path):
    """The volume path builds its own Predictor: --no-postprocess must reach it all the same."""
    from segclr.io.metaimage import write_metaimage
    from segclr.io.volumes import Volume

    bundle = _with_postprocess(tiny_bundle, tmp_path, {"min_component_px": 6, "retina_only": True})
    vol = np.stack([_band_bscan(64, 80, seed) for seed in range(3)])
    ref = np.zeros(vol.shape, np.uint8)
    ref[:, 30:36, 31:43] = 1
    spacing = (0.12, 0.004, 0.011)
    write_metaimage(tmp_path / "img.mhd", Volume((vol * 255).round().astype(np.uint8), spacing))
    write_metaimage(tmp_path / "ref.mhd", Volume(ref, spacing))
    results = {}
    for name, model, extra in (("pp", bundle, []), ("off", bundle, ["--no-postprocess"]), ("old", tiny_bundle, [])):
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", "--checkpoint", str(model), "--images", str(tmp_path / "img.mhd"),
                     "--masks", str(tmp_path / "ref.mhd"), "--out", str(out), *extra]) == 0
        results[name] = json.loads(out.read_text())["metric_per_case"]
    assert results["off"] == results["old"]  # raw masks: as a bundle without post-processing
    assert results["pp"] != results["off"]
    assert Predictor(bundle).applied_postprocess is not None  # the switch does not outlive the command


def test_describe_postprocess_in_words():
    assert describe_postprocess({"min_component_px": 20, "retina_only": True}) == (
        "fluid components < 20 px (at the model's working resolution) removed; fluid kept inside the retina mask")
    assert describe_postprocess({"retina_only": True}) == "fluid kept inside the retina mask"
    assert describe_postprocess({"min_component_px": 20, "retina_only": True}, enabled=False) == \
        "none (--no-postprocess)"
    assert describe_postprocess(None) == describe_postprocess({"min_component_px": 0}) == \
        "none (the model bundle stores no post-processing)"


def test_predict_records_the_postprocess_in_the_fluid_csv_and_the_report(tiny_bundle, tmp_path):
    """The volume CSV's last column and the report's run summary say what the masks got."""
    import csv
    import html

    from segclr.io.metaimage import write_metaimage
    from segclr.io.volumes import Volume

    bundle = _with_postprocess(tiny_bundle, tmp_path, {"min_component_px": 6, "retina_only": True})
    vol = np.stack([_band_bscan(64, 80, seed) for seed in range(2)])
    write_metaimage(tmp_path / "img.mhd", Volume((vol * 255).round().astype(np.uint8), (0.12, 0.004, 0.011)))
    expected = {"pp": ([], "fluid components < 6 px (at the model's working resolution) removed; "
                           "fluid kept inside the retina mask"),
                "raw": (["--no-postprocess"], "none (--no-postprocess)")}
    for name, (extra, words) in expected.items():
        out = tmp_path / name
        assert main(["predict", "--checkpoint", str(bundle), "--input", str(tmp_path / "img.mhd"),
                     "--output", str(out), "--report", *extra]) == 0
        with (out / "fluid_volumes.csv").open() as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        assert reader.fieldnames[-1] == "postprocess" and [r["postprocess"] for r in rows] == [words]
        page = (out / "report.html").read_text()
        assert page.count("<b>Post-processing:</b>") == 1
        assert f"<b>Post-processing:</b> {html.escape(words)}</p>" in page
