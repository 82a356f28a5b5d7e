"""The demo's report: representative overlays, n behind each mean, model cards with the metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segclr.experiment import demo
from segclr.experiment.overlays import Case, error_rgb, representative


def _case(label: str, ref_pixels: int, hit: int, fp: int = 0) -> Case:
    ref = np.zeros((8, 8), np.int64)
    ref.flat[:ref_pixels] = 1
    pred = np.zeros_like(ref)
    pred.flat[:hit] = 1
    pred.flat[64 - fp:] = 1 if fp else pred.flat[64 - fp:]
    return Case(label, np.zeros((8, 8), np.float32), ref, {"a": pred, "b": pred})


def test_representative_rows_are_best_median_worst_and_an_empty_reference():
    cases = [_case("good", 10, 10), _case("mid", 10, 5), _case("bad", 10, 0), _case("meh", 10, 3),
             _case("empty1", 0, 0, fp=4), _case("empty2", 0, 0)]
    rows = representative(cases)
    assert [(kind, c.label) for kind, c in rows] == [
        ("best", "good"), ("median", "mid"), ("worst", "bad"), ("empty reference", "empty1")]
    # the first empty-reference B-scan, not the one that flatters the methods
    assert rows[-1][1].scores("a") == (0.0, 4, 0)


def test_error_colours_separate_false_positives_and_negatives():
    ref = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    rgb = error_rgb(np.zeros((1, 4), np.float32), pred, ref)
    tp, fn, fp, tn = rgb[0]
    assert tp[1] > tp[0] and fp[0] > fp[1] and fn[2] > fn[0] and not tn.any()


@pytest.mark.slow
def test_demo_report_with_a_tiny_model(tmp_path, monkeypatch, bank):
    tiny = {
        "trainer": {"max_steps": 2, "checkpoint_every_n_steps": 1, "log_every_n_steps": 1, "progress_bar": False},
        "data": {"batch_size": 2, "crop_size": 32, "input_height": 64, "target_domains": ["cirrus_like"],
                 "eval_domains": ["spectralis", "cirrus_like"]},
        "model": {"base_channels": 4, "depth": 2, "head_hidden": 16, "embedding_dim": 8},
    }
    monkeypatch.setattr(demo, "DEMO_OVERRIDES", tiny)
    monkeypatch.setattr(demo, "DomainBank", lambda seed, **kw: bank)
    report = demo.run_demo(tmp_path / "out", progress=False)
    out = tmp_path / "out"
    md = (out / "results.md").read_text()
    assert md.count("(n=") == 8 and "n differs by method" in md and "wall time" in md.lower()
    assert [r.split(":")[0] for r in report["overlays"]["spectralis"]] == ["best", "median", "worst", "empty reference"]
    assert (out / "overlays_cirrus_like.png").is_file()
    for method in ("supervised", "segclr_uda"):
        card = (out / method / "model_card.md").read_text()
        assert "spectralis: Dice per B-scan" in card and "results.json" in card
        card_json = json.loads((out / method / "model_card.json").read_text())
        assert set(card_json["metrics"]["per_domain"]) == {"spectralis", "cirrus_like"}


def test_demo_keeps_the_half_resolution_geometry_while_the_defaults_are_full_resolution():
    """The demo's 15-minute budget rests on 248 rows and 128-px crops (4x cheaper per step than the
    full-resolution default); its post-processing minimum is the one chosen for that grid."""
    from segclr.config import RunConfig

    default = RunConfig()
    assert (default.data.input_height, default.data.crop_size, default.postprocess.min_component_px) == (496, 256, 80)
    configs = demo.demo_configs(seed=3, steps=50, target="topcon_like")
    assert set(configs) == {"supervised", "segclr_uda"}
    for cfg in configs.values():
        assert (cfg.data.input_height, cfg.data.crop_size, cfg.postprocess.min_component_px) == (248, 128, 20)
        assert cfg.trainer.seed == 3 and cfg.trainer.max_steps == 50 and cfg.data.target_domains == ["topcon_like"]
    assert configs["segclr_uda"].objective.mode == "segclr_uda" and configs["segclr_uda"].data.pairs == "a"
