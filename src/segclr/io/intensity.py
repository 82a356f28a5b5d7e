"""Volume intensities -> float32 in [0, 1], one rule for training data and prediction.

Lives in the bottom layer so that both ``segclr.data`` (dataset files) and ``segclr.inference``
(``segclr predict``) use it without one importing the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segclr.io.images import InputError, to_unit_range


def normalize_intensity(array: np.ndarray, where: str | Path = "volume") -> np.ndarray:
    """8-bit / 255, 16-bit / 65535; other types as they are within [0, 1], else min-max scaled per volume
    (with a note). NaN or infinite voxels are refused, naming ``where``."""
    try:
        return to_unit_range(array, where, per="volume")
    except InputError:
        raise InputError(f"{where}: volume contains NaN or infinite voxels") from None
