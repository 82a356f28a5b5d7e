"""Tests of segclr.evaluation.overlay_check: the overlay variant of a B-scan and the fluid-on-overlay score."""

from __future__ import annotations

import numpy as np
import pytest

import segclr.evaluation.overlay_check as oc
from segclr.evaluation.overlay_check import TARGET_FRACTION, overlay_fluid_fraction, overlay_variant


def bscan(h: int = 496, w: int = 512, seed: int = 0) -> np.ndarray:
    """Dark background, a bright retina band in the middle rows."""
    rng = np.random.default_rng(seed)
    img = (0.05 + 0.05 * rng.random((h, w))).astype(np.float32)
    img[h // 3: h // 2] += 0.5
    return img


@pytest.mark.parametrize("shape", [(496, 512), (496, 576), (1024, 512), (200, 300)])
def test_variant_is_deterministic_and_its_mask_covers_the_changed_pixels(shape):
    img = bscan(*shape)
    before = img.copy()
    a, ov_a = overlay_variant(img, 3)
    b, ov_b = overlay_variant(img, 3)
    assert np.array_equal(img, before)  # input untouched
    assert np.array_equal(a, b) and np.array_equal(ov_a, ov_b)
    assert a.shape == img.shape and a.dtype == np.float32 and ov_a.dtype == bool
    assert not np.any((a != img) & ~ov_a)
    assert ov_a.any() and (a != img).any()
    assert 0.005 < ov_a.mean() < 0.12  # a realistic share of the B-scan, not most of it
    assert a.min() >= 0 and a.max() <= 1
    c, ov_c = overlay_variant(img, 4)
    assert not np.array_equal(ov_a, ov_c)


def test_variant_puts_overlays_at_top_bottom_and_corners():
    img = bscan()
    _, ov = overlay_variant(img, 0)
    h, w = ov.shape
    assert ov[: h // 10].any()            # text line (and maybe a corner) at the top
    assert ov[-h // 5:].any()             # scale bar near the bottom
    corners = [ov[: h // 4, : w // 4], ov[: h // 4, -w // 4:], ov[-h // 4:, : w // 4], ov[-h // 4:, -w // 4:]]
    assert sum(c.any() for c in corners) >= 2  # glyph and inset in two corners


def test_fraction_on_a_known_overlay_hand_computed(monkeypatch):
    """Overlay: a 10x10 square at rows 20-29, columns 30-39 of a 100x100 B-scan; dilated by 2 px it is
    rows 18-31 x columns 28-41 (14 x 14). The fake model marks rows 0-24 as fluid: 7 rows (18-24) x 14
    columns = 98 pixels on the dilated overlay, 98 / 10000 = 0.0098 of the image."""
    def fake_variant(image, seed):
        ov = np.zeros(image.shape, dtype=bool)
        ov[20:30, 30:40] = True
        out = image.copy()
        out[ov] = 1.0
        return out, ov

    monkeypatch.setattr(oc, "overlay_variant", fake_variant)
    seen = []

    def predictor(image, spacing_um):
        seen.append(spacing_um)
        pred = np.zeros(image.shape, dtype=np.uint8)
        if image.mean() > 0.01:  # the second B-scan (all zeros but the overlay) gets no fluid at all
            pred[:25] = 1
        return pred

    images = [np.full((100, 100), 0.5, np.float32), np.zeros((100, 100), np.float32)]
    res = overlay_fluid_fraction(predictor, images, [(3.9, 11.3), (2.0, 11.7)], seed=0)
    assert res.fractions.tolist() == pytest.approx([0.0098, 0.0])
    assert res.max == pytest.approx(0.0098) and res.mean == pytest.approx(0.0049)
    assert res.worst == 0 and res.over_target == 1
    assert res.clean_fractions.tolist() == pytest.approx([0.0098, 0.0])  # the fake ignores the overlay
    assert seen == [(3.9, 11.3), (3.9, 11.3), (2.0, 11.7), (2.0, 11.7)]


def test_fraction_with_a_model_that_marks_everything_is_the_dilated_overlay_share():
    img = bscan(120, 160)
    _, ov = overlay_variant(img, 7)
    # 2-px dilation with a 5x5 square, written out as shifts
    p = np.pad(ov, 2)
    zone = np.zeros_like(ov)
    for dy in range(5):
        for dx in range(5):
            zone |= p[dy:dy + ov.shape[0], dx:dx + ov.shape[1]]
    res = overlay_fluid_fraction(lambda im, sp: np.ones(im.shape, np.uint8), [img], None, seed=7, keep=True)
    assert res.fractions[0] == pytest.approx(zone.mean())
    assert np.array_equal(res.scores[0].overlay, ov) and res.scores[0].overlay_pixels == zone.sum()
    assert res.over_target == 1


def test_a_model_that_finds_nothing_scores_zero_and_the_target_is_005_percent():
    assert TARGET_FRACTION == 0.0005
    res = overlay_fluid_fraction(lambda im, sp: np.zeros(im.shape, np.uint8), [bscan(100, 100)] * 3, (3.9, 11.3),
                                 seed=1, control=False)
    assert res.fractions.tolist() == [0.0, 0.0, 0.0] and res.max == 0.0 and res.over_target == 0
    assert np.isnan(res.clean_fractions).all()
    with pytest.raises(ValueError):
        overlay_fluid_fraction(lambda im, sp: im, [bscan(50, 50)], [(1.0, 1.0)] * 2)
