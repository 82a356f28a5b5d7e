"""Tests of segclr.data.overlays_aug (synthetic burned-in overlays) and its hook in Objective.labeled_batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segclr.data.overlays_aug as oa
from segclr.data.overlays_aug import OverlayAugment, burn_overlays
from segclr.models import UNet
from segclr.objectives.supervised import SupervisedObjective
from segclr.training.module import _Seeded


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def oct_like_batch(b: int = 8, h: int = 64, w: int = 64, seed: int = 0):
    """Dark background with a bright band (the retina) in the middle rows; fluid inside the band."""
    g = gen(seed)
    images = 0.05 + 0.05 * torch.rand(b, 1, h, w, generator=g)
    images[:, :, h // 3: 2 * h // 3] += 0.5
    masks = torch.zeros(b, h, w, dtype=torch.long)
    masks[:, h // 3: 2 * h // 3, w // 4: 3 * w // 4] = 1
    return images, masks


def test_deterministic_for_a_fixed_generator():
    images, masks = oct_like_batch()
    a = burn_overlays(images, masks, 1.0, gen(3))
    b = burn_overlays(images, masks, 1.0, gen(3))
    c = burn_overlays(images, masks, 1.0, gen(4))
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and torch.equal(a.overlay, b.overlay)
    assert not torch.equal(a.overlay, c.overlay)


@pytest.mark.parametrize("seed", range(6))
def test_changes_only_reported_pixels_and_zeroes_the_mask_exactly_there(seed):
    images, masks = oct_like_batch(seed=seed)
    masks = masks + 1  # labels 1 and 2 everywhere: a 0 can only come from an overlay
    before_i, before_m = images.clone(), masks.clone()
    out = burn_overlays(images, masks, 1.0, gen(seed))
    assert torch.equal(images, before_i) and torch.equal(masks, before_m)  # inputs untouched
    assert out.images is not images and out.masks is not masks
    assert out.overlay.dtype == torch.bool and out.overlay.shape == masks.shape
    assert out.overlay.any(dim=(1, 2)).all()  # p = 1: every crop got something
    changed = (out.images != images).any(dim=1)
    assert not (changed & ~out.overlay).any()
    assert torch.equal(out.masks == 0, out.overlay)
    assert torch.equal(out.masks[~out.overlay], masks[~out.overlay])
    assert out.images.dtype == images.dtype and out.masks.dtype == masks.dtype
    assert out.images.min() >= 0 and out.images.max() <= 1


def test_p_zero_is_bit_identical_and_draws_nothing():
    images, masks = oct_like_batch()
    g = gen(5)
    state = g.get_state()
    torch.manual_seed(11)
    global_state = torch.get_rng_state()
    out = burn_overlays(images, masks, 0.0, g)
    assert torch.equal(g.get_state(), state)
    assert torch.equal(out.images, images) and torch.equal(out.masks, masks) and not out.overlay.any()
    assert out.images is not images  # new tensors all the same
    burn_overlays(images, masks, 0.0, None)
    assert torch.equal(torch.get_rng_state(), global_state)


def test_hits_about_p_of_the_crops():
    images, masks = oct_like_batch(b=400, h=32, w=32)
    out = burn_overlays(images, masks, 0.5, gen(0))
    rate = out.overlay.any(dim=(1, 2)).float().mean().item()
    assert 0.42 <= rate <= 0.58  # binomial sd 0.025


def test_prefers_dark_rows():
    images, masks = oct_like_batch(b=200, h=64, w=64)
    images[:, :, 32:] = 0.9  # bottom half bright: overlays should mostly sit in the top half
    out = burn_overlays(images, masks, 1.0, gen(1))
    top, bottom = out.overlay[:, :32].sum().item(), out.overlay[:, 32:].sum().item()
    assert top > 2 * bottom


def test_masks_none_and_module_wrapper():
    images, _ = oct_like_batch()
    out = burn_overlays(images, None, 1.0, gen(0))
    assert out.masks is None and out.overlay.any()
    x, m = OverlayAugment(1.0)(images, None, generator=gen(0))
    assert m is None and torch.equal(x, out.images)
    with pytest.raises(ValueError):
        OverlayAugment(1.5)
    with pytest.raises(ValueError):
        burn_overlays(images[0], None, 0.5)


def test_stamps_have_the_documented_shapes():
    assert oa.text_stamp([1, 2, 3], 5, 2, 3).shape == (14, 3 * (3 * 6) - 3)
    assert oa.text_stamp(oa.font_chars("200"), 3).shape == (5, 11)
    for d in range(4):
        assert oa.arrow_stamp(11, 2, d).shape == (11, 11) and oa.arrow_stamp(11, 2, d).any()
    assert oa.ring_stamp(12, 2, True)[6, 6] and not oa.ring_stamp(12, 2, False)[6, 6]
    box = oa.box_stamp(6, 8, 1)
    assert box.sum() == 2 * 8 + 2 * 4 and oa.box_stamp(6, 8, 0).all()
    bar = oa.scale_bar_stamp(20, 2, 5)
    assert bar.shape == (5, 20) and bar[-2:].all() and bar[:, 0].all() and not bar[0, 10]


def test_soft_paste_leaves_pixels_outside_the_reported_ones_exact():
    image = np.full((1, 20, 20), 0.3, dtype=np.float32)
    mask = np.ones((20, 20), dtype=np.int64)
    ov = np.zeros((20, 20), dtype=bool)
    stamp = np.zeros((4, 4), dtype=bool)
    stamp[1:3, 1:3] = True
    oa.paste(image, mask, ov, 5, 5, stamp, 1.0, soft=True)
    assert ov.sum() == 4 * 4  # the 2x2 square grown by one pixel on each side
    assert (image[0][~ov] == np.float32(0.3)).all() and (mask == 0).sum() == 16
    assert image[0, 6:8, 6:8].min() > 0.3


# --------------------------------------------------------------------------- Objective.labeled_batch
def _objective(make_config, **augment):
    cfg = make_config(objective={"mode": "supervised"}, augment=augment)
    net = UNet(1, 2, cfg.model.base_channels, cfg.model.depth)
    return SupervisedObjective(cfg, net), cfg


class _Spy:
    def __init__(self):
        self.calls = []

    def __call__(self, images, masks, p, generator=None):
        self.calls.append((p, generator))
        return oa.Overlaid(images, masks, torch.zeros(masks.shape, dtype=torch.bool))


@pytest.mark.parametrize("labeled", [True, False])
def test_labeled_batch_uses_overlays_only_when_prob_is_positive(make_config, monkeypatch, labeled):
    images, masks = oct_like_batch(b=2, h=32, w=32)
    batch = {"image": images, "mask": masks}
    spy = _Spy()
    monkeypatch.setattr(oa, "burn_overlays", spy)
    off, cfg = _objective(make_config, labeled=labeled)
    assert cfg.augment.overlay_prob == 0.0
    off.labeled_batch(_Seeded(_PassThrough(), gen(0)), batch)
    assert spy.calls == []
    on, _ = _objective(make_config, labeled=labeled, overlay_prob=0.3)
    g = gen(0)
    on.labeled_batch(_Seeded(_PassThrough(), g), batch)
    assert len(spy.calls) == 1 and spy.calls[0][0] == 0.3 and spy.calls[0][1] is g  # the step's generator


class _PassThrough(torch.nn.Module):
    def forward(self, images, masks=None, generator=None):
        return images, masks


def test_labeled_batch_overlays_without_photometric_augmentation(make_config):
    images, masks = oct_like_batch(b=4, h=32, w=32)
    batch = {"image": images, "mask": masks}
    obj, _ = _objective(make_config, labeled=False, overlay_prob=1.0)
    from segclr.data.augment import BatchAugment

    aug = BatchAugment(obj.cfg.augment)
    x1, y1 = obj.labeled_batch(_Seeded(aug, gen(7)), batch)
    x2, y2 = obj.labeled_batch(_Seeded(aug, gen(7)), batch)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # reproducible from the step's generator
    changed = (x1 != images).any(dim=1)
    assert changed.any() and torch.equal(masks[~changed], y1[~changed])  # no photometric change elsewhere
    assert (y1[changed] == 0).all()
    # a bare augment module (no generator): the objective's own seeded stream, still deterministic
    fresh, _ = _objective(make_config, labeled=False, overlay_prob=1.0)
    a, _ = obj.labeled_batch(aug, batch)
    b, _ = fresh.labeled_batch(aug, batch)
    assert torch.equal(a, b)


def test_labeled_batch_with_zero_prob_is_unchanged(make_config):
    images, masks = oct_like_batch(b=2, h=32, w=32)
    batch = {"image": images, "mask": masks}
    obj, _ = _objective(make_config, labeled=False)
    x, y = obj.labeled_batch(_Seeded(_PassThrough(), gen(0)), batch)
    assert x is images and y is masks
    from segclr.data.augment import BatchAugment

    aug_obj, cfg = _objective(make_config)
    aug = BatchAugment(cfg.augment)
    g1, g2 = gen(9), gen(9)
    x1, y1 = aug_obj.labeled_batch(_Seeded(aug, g1), batch)
    x2, y2 = aug(images, masks, generator=g2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(g1.get_state(), g2.get_state())
