import inspect

import numpy as np
import pytest
import torch

from segclr.data.datamodule import SlicePairs, WorkingVolume
from segclr.data.pairs import pair_is_augmented, slice_pair


@pytest.mark.parametrize("distance", [1, 2, 3])
def test_ps_partner_is_a_different_slice_within_distance(distance):
    rng = np.random.default_rng(0)
    for _ in range(500):
        i, j = slice_pair(11, "s", distance, rng)
        assert i != j and abs(i - j) <= distance and 0 <= j < 11


@pytest.mark.parametrize("mode", ["s", "s+a"])
@pytest.mark.parametrize("distance", [1, 2, 3])
def test_ps_partners_cover_the_whole_window_both_sides(mode, distance):
    # An interior slice must be paired with every slice within `distance`, above and below;
    # the edge slices with every in-volume slice within reach. Every anchor is drawn.
    n = 11
    rng = np.random.default_rng(1)
    offsets: dict[int, set[int]] = {i: set() for i in range(n)}
    for _ in range(3000):
        i, j = slice_pair(n, mode, distance, rng)
        offsets[i].add(j - i)
    for i, seen in offsets.items():
        expected = {d for d in range(-distance, distance + 1) if d != 0 and 0 <= i + d < n}
        assert seen == expected, (i, sorted(seen))


def test_ps_partner_offsets_are_uniform():
    # Interior anchors: each of the 2 * distance offsets about equally often (no bias to one side).
    rng = np.random.default_rng(2)
    counts = {d: 0 for d in (-2, -1, 1, 2)}
    for _ in range(4000):
        i, j = slice_pair(11, "s", 2, rng)
        if 2 <= i <= 8:
            counts[j - i] += 1
    total = sum(counts.values())
    assert all(abs(c / total - 0.25) < 0.04 for c in counts.values()), counts


def test_anchor_slices_are_uniform():
    rng = np.random.default_rng(3)
    anchors = [slice_pair(5, mode, 1, rng)[0] for mode in ("a", "s") for _ in range(1000)]
    assert all(abs(anchors.count(i) / len(anchors) - 0.2) < 0.04 for i in range(5))


def test_single_slice_volume_pairs_with_itself_and_bad_inputs_are_refused():
    rng = np.random.default_rng(0)
    assert slice_pair(1, "s", 2, rng) == (0, 0)
    assert slice_pair(1, "s+a", 0, rng) == (0, 0)
    with pytest.raises(ValueError, match="^a volume needs at least one slice$"):
        slice_pair(0, "a", 1, rng)
    with pytest.raises(ValueError, match="^pair distance must be >= 1 slice for Ps, got 0$"):
        slice_pair(5, "s", 0, rng)
    i, j = slice_pair(5, "a", 0, rng)  # Pa ignores the distance
    assert i == j and 0 <= i < 5
    with pytest.raises(ValueError, match="unknown pair mode 'x'; expected one of a, s, s\\+a"):
        slice_pair(5, "x", 1, rng)


def test_pa_pairs_the_slice_with_itself():
    rng = np.random.default_rng(0)
    assert all(i == j for i, j in (slice_pair(11, "a", 2, rng) for _ in range(100)))


def test_augmentation_flags():
    assert pair_is_augmented("a") and pair_is_augmented("s+a") and not pair_is_augmented("s")
    with pytest.raises(ValueError, match="unknown pair mode"):
        pair_is_augmented("q")


def _volume(patient: int, n: int = 6) -> WorkingVolume:
    # slice k of patient p is filled with the value 100*p + k, so a crop tells where it came from
    imgs = torch.stack([torch.full((1, 16, 16), float(100 * patient + k)) for k in range(n)])
    return WorkingVolume("x", patient, imgs, torch.zeros(n, 16, 16, dtype=torch.long))


@pytest.mark.parametrize("mode", ["s", "s+a"])
def test_pair_stream_partners_come_from_same_patient_within_distance(mode):
    stream = iter(SlicePairs([_volume(1), _volume(2), _volume(3)], crop=8, mode=mode, distance=2, seed=0))
    for _ in range(200):
        item = next(stream)
        a, b = int(item["view1"][0, 0, 0]), int(item["view2"][0, 0, 0])
        assert a // 100 == b // 100 == item["group"]
        assert 1 <= abs(a % 100 - b % 100) <= 2


def _coded_volume(patient: int, n: int = 6, h: int = 20, w: int = 24) -> WorkingVolume:
    # pixel (k, y, x) of patient p holds 100000*p + 1000*k + 30*y + x: one pixel tells volume,
    # slice and position, so a crop's first pixel tells exactly which window of which slice it is
    k, y, x = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    imgs = (100000 * patient + 1000 * k + 30 * y + x).double()[:, None]
    return WorkingVolume("x", patient, imgs, torch.zeros(n, h, w, dtype=torch.long))


def _decode(view: torch.Tensor) -> tuple[int, int, int, int]:
    code = int(view[0, 0, 0])
    return code // 100000, code % 100000 // 1000, code % 1000 // 30, code % 1000 % 30


@pytest.mark.parametrize("mode", ["a", "s", "s+a"])
def test_pair_stream_views_share_one_crop_window(mode):
    vols = [_coded_volume(1), _coded_volume(2)]
    stream = iter(SlicePairs(vols, crop=8, mode=mode, distance=2, seed=0))
    origins = set()
    for _ in range(100):
        item = next(stream)
        p1, k1, y1, x1 = _decode(item["view1"])
        p2, k2, y2, x2 = _decode(item["view2"])
        assert p1 == p2 == item["group"]
        assert (y1, x1) == (y2, x2)  # the same window in both views
        vol = vols[p1 - 1].images
        assert torch.equal(item["view1"], vol[k1, :, y1:y1 + 8, x1:x1 + 8])
        assert torch.equal(item["view2"], vol[k2, :, y2:y2 + 8, x2:x2 + 8])
        if mode == "a":
            assert k1 == k2
        else:
            assert 1 <= abs(k1 - k2) <= 2
        origins.add((y1, x1))
    # the window moves over the whole image (13 x 17 possible origins), corners included
    assert len(origins) > 50
    ys, xs = {o[0] for o in origins}, {o[1] for o in origins}
    assert min(ys) == 0 and max(ys) == 20 - 8 and min(xs) == 0 and max(xs) == 24 - 8


def test_pair_stream_pa_uses_same_crop_of_same_slice():
    stream = iter(SlicePairs([_coded_volume(1)], crop=8, mode="a", distance=2, seed=0))
    slices = set()
    for _ in range(60):
        item = next(stream)
        assert torch.equal(item["view1"], item["view2"])
        slices.add(_decode(item["view1"])[1])
    assert slices == set(range(6))  # every slice is used


@pytest.mark.skipif("anchor" not in inspect.signature(slice_pair).parameters, reason="slice_pair has no anchor")
def test_anchor_fixes_the_first_slice():
    rng = np.random.default_rng(0)
    for anchor in (0, 5, 10):
        assert slice_pair(11, "a", 2, rng, anchor=anchor) == (anchor, anchor)
        partners = {slice_pair(11, "s", 2, rng, anchor=anchor)[1] for _ in range(200)}
        assert partners == {j for j in range(anchor - 2, anchor + 3) if j != anchor and 0 <= j < 11}
    for bad in (-1, 11):
        with pytest.raises(ValueError, match=f"^anchor slice {bad} is outside the volume's 11 slices$"):
            slice_pair(11, "s", 2, rng, anchor=bad)
