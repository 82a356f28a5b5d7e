"""Fluid-centred crops: by fluid pixel, or by fluid component so small pockets get their share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segclr.data.datamodule import LabeledSlices, WorkingVolume, _crop_origin


def _volume():
    """One slice of 64 x 64: a large pocket (400 px, top left) and a small one (4 px, bottom right)."""
    masks = torch.zeros(1, 64, 64, dtype=torch.long)
    masks[0, 2:22, 2:22] = 1
    masks[0, 58:60, 58:60] = 1
    images = masks[:, None].float()
    return WorkingVolume("d", 1, images, masks)


def _centre_is_small(stream: LabeledSlices, k: int) -> bool:
    # the small pocket is the only fluid in the bottom-right 16 x 16 corner of the slice
    crop = stream.sample(np.random.default_rng([3, k]), k)["mask"]
    return bool(crop.sum() == 4)


def test_component_sampling_centres_small_pockets_as_often_as_large_ones():
    pixel, component = (LabeledSlices([_volume()], 16, 3, 1.0, by) for by in ("pixel", "component"))
    by_pixel = sum(_centre_is_small(pixel, k) for k in range(400)) / 400
    by_component = sum(_centre_is_small(component, k) for k in range(400)) / 400
    assert by_pixel < 0.05                    # 4 of 404 fluid pixels
    assert 0.4 < by_component < 0.6           # one of two components


def test_component_sampling_is_deterministic_and_handles_slices_without_fluid():
    stream = LabeledSlices([_volume()], 16, 3, 1.0, "component")
    a = stream.sample(np.random.default_rng([3, 7]), 7)
    b = LabeledSlices([_volume()], 16, 3, 1.0, "component").sample(np.random.default_rng([3, 7]), 7)
    assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["image"], b["image"])
    empty = WorkingVolume("d", 2, torch.zeros(1, 1, 32, 32), torch.zeros(1, 32, 32, dtype=torch.long))
    crop = LabeledSlices([empty], 16, 0, 1.0, "component").sample(np.random.default_rng(0), 0)
    assert crop["mask"].shape == (16, 16) and crop["mask"].sum() == 0


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="fluid_crop_by"):
        LabeledSlices([_volume()], 16, 0, 1.0, "blob")


def _sample_before_fluid_crop_by(stream: LabeledSlices, rng: np.random.Generator) -> dict:
    """LabeledSlices.sample as it was before data.fluid_crop_by existed (committed cells ran with it)."""
    vol = stream.volumes[int(rng.integers(len(stream.volumes)))]
    s = int(rng.integers(len(vol.images)))
    mask = vol.masks[s]
    centre = None
    if rng.random() < stream.fluid_crop_prob:
        fluid = torch.nonzero(mask > 0)
        if len(fluid):
            centre = tuple(fluid[int(rng.integers(len(fluid)))].tolist())
    y, x = _crop_origin(*mask.shape, stream.crop, rng, centre)
    c = stream.crop
    return {"image": vol.images[s, :, y:y + c, x:x + c], "mask": mask[y:y + c, x:x + c]}


def test_pixel_mode_draws_exactly_what_the_sampler_drew_before():
    second = WorkingVolume("d", 2, torch.rand(3, 1, 64, 64), (torch.rand(3, 64, 64) > 0.97).long())
    stream = LabeledSlices([_volume(), second], 16, 5, 0.8, "pixel")
    for k in range(200):
        now = stream.sample(np.random.default_rng([5, k]), k)
        before = _sample_before_fluid_crop_by(stream, np.random.default_rng([5, k]))
        assert torch.equal(now["image"], before["image"]) and torch.equal(now["mask"], before["mask"])
