"""Positive-pair generation (the paper's P): Pa, Ps and Ps+a.

* ``a``   (Pa):   the same B-scan twice; the two views differ only by augmentation.
* ``s``   (Ps):   two B-scans of the same volume at most ``distance`` slices apart, not augmented.
* ``s+a`` (Ps+a): as Ps, each view independently augmented.

Both members of a pair share one crop window, so nearby slices stay spatially aligned
(what the Cch head exploits). The volume id and both slice indices travel with every pair: for
Ps and Ps+a, :func:`segclr.losses.nt_xent` uses them to drop same-volume negatives within
``distance`` slices of the query, which would be false negatives. Pa masks nothing.

What "neighbouring" means depends on the data. The embedded Duke benchmark has only the 11
annotated B-scans of each scan, and they are not contiguous in the original volume, so its Ps
"neighbours" can lie far apart. A user's own volumes (``data.dataset``) are read whole, in
acquisition order (array axis 0), so there Ps pairs are true neighbours.
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


def slice_pair(num_slices: int, mode: str, distance: int, rng: np.random.Generator,
               anchor: int | None = None) -> tuple[int, int]:
    """Draw (i, j) slice indices of one volume for a positive pair.

    ``i`` is ``anchor`` when given, otherwise uniform. For Ps/Ps+a, ``j != i`` and
    ``|i - j| <= distance`` (a volume of one slice pairs it with itself).
    """
    _check_mode(mode)
    if num_slices < 1:
        raise ValueError("a volume needs at least one slice")
    if anchor is not None and not 0 <= anchor < num_slices:
        raise ValueError(f"anchor slice {anchor} is outside the volume's {num_slices} slices")
    i = int(rng.integers(num_slices)) if anchor is None else int(anchor)
    if mode == "a" or num_slices == 1:
        return i, i
    if distance < 1:
        raise ValueError(f"pair distance must be >= 1 slice for Ps, got {distance}")
    candidates = [j for j in range(max(0, i - distance), min(num_slices, i + distance + 1)) if j != i]
    return i, int(rng.choice(candidates))
