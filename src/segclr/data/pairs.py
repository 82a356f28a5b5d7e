"""Positive-pair generation (the paper's P): Pa, Ps and Ps+a.

* ``a``   (Pa):   the same B-scan twice; the two views differ only by augmentation.
* ``s``   (Ps):   two B-scans of the same volume at most ``distance`` slices apart, not augmented.
* ``s+a`` (Ps+a): as Ps, each view independently augmented.

Both members of a pair share one crop window, so nearby slices stay spatially aligned
(what the Cch head exploits). The volume id travels with every pair: :func:`segclr.losses.nt_xent`
uses it to drop same-volume negatives, which would be false negatives for Ps.
"""

from __future__ import annotations

import numpy as np

PAIR_MODES = ("a", "s", "s+a")


def pair_is_augmented(mode: str) -> bool:
    _check_mode(mode)
    return mode in ("a", "s+a")


def _check_mode(mode: str) -> None:
    if mode not in PAIR_MODES:
        raise ValueError(f"unknown pair mode {mode!r}; expected one of {', '.join(PAIR_MODES)}")


def slice_pair(num_slices: int, mode: str, distance: int, rng: np.random.Generator) -> tuple[int, int]:
    """Draw (i, j) slice indices of one volume for a positive pair.

    For Ps/Ps+a, ``j != i`` and ``|i - j| <= distance`` (a volume of one slice pairs it with itself).
    """
    _check_mode(mode)
    if num_slices < 1:
        raise ValueError("a volume needs at least one slice")
    i = int(rng.integers(num_slices))
    if mode == "a" or num_slices == 1:
        return i, i
    if distance < 1:
        raise ValueError(f"pair distance must be >= 1 slice for Ps, got {distance}")
    candidates = [j for j in range(max(0, i - distance), min(num_slices, i + distance + 1)) if j != i]
    return i, int(rng.choice(candidates))
