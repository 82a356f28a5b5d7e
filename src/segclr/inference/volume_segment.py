"""Per-volume computations of whole-volume prediction: B-scan spacing, labels, fluid statistics, shift.

:func:`segment_volume` labels every B-scan of a (slices, H, W) volume in batches with the
training preprocessing (intensities normalized by :func:`segclr.io.intensity.normalize_intensity`,
B-scans resampled to the model's spacing from ``--spacing`` or the volume header, as
:func:`bscan_spacing_um` reads it), and :func:`segment_volume_scored` also returns each B-scan's
domain-shift score from the same encoder pass; :func:`shift_columns` turns those scores into a
volume's CSV columns. :func:`fluid_statistics` counts per class the voxels, the nanoliters
(voxels x voxel volume in mm^3 x 1000) and the B-scans that contain the class. Nothing here reads
or writes files; the drivers that do are in :mod:`segclr.inference.volumes`, which re-exports
every name here.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from segclr.data.preprocess import check_spacing
from segclr.inference.predict import Predictor
from segclr.io.images import InputError
from segclr.io.intensity import normalize_intensity
from segclr.io.volumes import Volume

NL_PER_MM3 = 1000.0


def bscan_spacing_um(volume: Volume, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """(row, column) um of a volume's B-scans: ``override`` (``--spacing``), else the header's (y, x), else None.

    A spacing that makes no sense (zero, negative, NaN, over 1 mm) is refused naming the file.
    """
    where = str(volume.path or "volume")
    if override is not None:
        return check_spacing(override, f"{where} (--spacing)")
    if volume.spacing_mm is None:
        return None
    return check_spacing((volume.spacing_mm[1] * 1000.0, volume.spacing_mm[2] * 1000.0), where)


def segment_volume(predictor: Predictor, volume: Volume | np.ndarray, batch_size: int = 8,
                   spacing_um: tuple[float, float] | None = None) -> np.ndarray:
    """Label every B-scan of a (slices, H, W) volume, ``batch_size`` B-scans at a time -> uint8 mask.

    The B-scans are resampled to the model's target spacing from ``spacing_um`` or, when that is
    None, the volume's header; a volume of unknown spacing gets one warning line and the height rule.
    The masks are post-processed as the predictor says (see :class:`Predictor`).
    """
    return segment_volume_scored(predictor, volume, batch_size, spacing_um, scores=False)[0]


def segment_volume_scored(predictor: Predictor, volume: Volume | np.ndarray, batch_size: int = 8,
                          spacing_um: tuple[float, float] | None = None, scores: bool = True
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`segment_volume` plus each B-scan's domain-shift score from the same encoder pass.

    The scores are None when ``scores`` is False or the bundle has no shift statistics.
    """
    vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
    where = vol.path or "volume"
    if min(vol.shape[1:]) < 8:
        raise InputError(f"{where}: B-scans of {vol.shape[1]} x {vol.shape[2]} pixels; at least 8 x 8 needed")
    spacing = bscan_spacing_um(vol, spacing_um)
    note = predictor.spacing_note(str(where), spacing)
    if note:
        tqdm.write(note)
    images = normalize_intensity(vol.array, where)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    scores = scores and predictor.shift_stats is not None
    out = np.empty(vol.shape, dtype=np.uint8)
    score = np.empty(vol.shape[0], dtype=np.float64) if scores else None
    for start in range(0, vol.shape[0], batch_size):
        part = slice(start, start + batch_size)
        if scores:
            out[part], score[part] = predictor.predict_with_scores(images[part], spacing)
        else:
            out[part] = predictor.predict_batch(images[part], spacing)
    return out, score


def fluid_statistics(mask: np.ndarray, spacing_mm: tuple[float, float, float] | None,
                     classes: dict[int, str], voxel_mm3: float | None = None) -> dict[str, object]:
    """Per class: voxels, nanoliters (``None`` without spacing) and affected B-scans; plus totals.

    ``mask`` is (slices, H, W) or a sequence of 2D masks; ``classes`` maps foreground labels to
    names. Nanoliters = voxels x voxel volume x 1000, the voxel volume being ``voxel_mm3`` when
    given (:attr:`Volume.voxel_mm3`, which allows for a sheared grid), else prod(spacing_mm).
    Keys: ``voxel_nl``, ``<name>_voxels``,
    ``<name>_nl``, ``<name>_bscans``, ``total_fluid_voxels``, ``total_fluid_nl``, ``total_fluid_bscans``
    (B-scans with any foreground class).
    """
    n = max(classes, default=0) + 1
    counts = np.stack([np.bincount(np.asarray(sl).ravel().astype(np.int64), minlength=n)[:n] for sl in mask]) \
        if len(mask) else np.zeros((0, n), dtype=np.int64)
    if voxel_mm3 is None and spacing_mm is not None:
        voxel_mm3 = float(np.prod(spacing_mm))
    voxel_nl = None if spacing_mm is None or voxel_mm3 is None else float(voxel_mm3) * NL_PER_MM3
    stats: dict[str, object] = {"voxel_nl": voxel_nl}
    labels = sorted(classes)
    for label in labels:
        voxels = int(counts[:, label].sum())
        stats[f"{classes[label]}_voxels"] = voxels
        stats[f"{classes[label]}_nl"] = None if voxel_nl is None else voxels * voxel_nl
        stats[f"{classes[label]}_bscans"] = int((counts[:, label] > 0).sum())
    fg = counts[:, labels].sum(1) if labels else np.zeros(len(mask), dtype=np.int64)
    stats["total_fluid_voxels"] = int(fg.sum())
    stats["total_fluid_nl"] = None if voxel_nl is None else int(fg.sum()) * voxel_nl
    stats["total_fluid_bscans"] = int((fg > 0).sum())
    return stats


def shift_columns(predictor: Predictor, images: np.ndarray | None = None,
                  spacing_um: tuple[float, float] | None = None, scores: np.ndarray | None = None) -> dict:
    """Domain-shift score of a volume (mean over its B-scans) and whether it is flagged.

    ``scores``: the B-scans' scores when already computed (:func:`segment_volume_scored`); else
    they are computed from ``images`` (one more encoder pass).
    """
    if scores is None and images is not None:
        scores = predictor.shift_scores(images, spacing_um)
    if scores is None or predictor.shift_threshold is None:
        return {"shift_score": None, "shift_threshold": None, "shift_flag": None}
    score = float(np.mean(scores))
    return {"shift_score": score, "shift_threshold": predictor.shift_threshold,
            "shift_flag": bool(score > predictor.shift_threshold)}
