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


def test_pair_stream_pa_uses_same_crop_of_same_slice():
    stream = iter(SlicePairs([_volume(1)], crop=8, mode="a", distance=2, seed=0))
    item = next(stream)
    assert torch.equal(item["view1"], item["view2"])
