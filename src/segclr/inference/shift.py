"""Domain-shift warning: how unlike the training data does a B-scan (or volume) look?

At the end of training, the UNet's bottleneck features of the training images (every labeled
and unlabeled training domain) are average-pooled into one vector per B-scan; their mean and
a shrunk covariance are stored in the model bundle. At prediction, each B-scan's squared
Mahalanobis distance to that distribution, divided by the feature dimension, is its *shift
score*. A volume's score is the mean over its B-scans; it is flagged when above the stored
threshold.

**Calibration.** Scores of the very B-scans the Gaussian was fitted on are biased low (with
55 B-scans and 128 features the covariance fits them closely), so a percentile of them flags
ordinary data from the training device. The threshold is therefore calibrated on *held-out*
scores: each training volume is scored by a Gaussian fitted to the other volumes
(leave-one-volume-out, a cross-conformal split). Split-conformal reasoning gives the rank: with
``n`` held-out scores, the ``ceil((n + 1)(1 - alpha))``-th smallest bounds the false-alarm
rate of a new B-scan from the training distribution by ``alpha``; when ``n`` is too small for
``alpha`` (n < 99 for 1 %), the largest held-out score is used (bound ``1 / (n + 1)``). A
volume's mean score is at most its largest B-scan score, so the volume flag is at least as
conservative. The network itself has still seen the training images, so held-out patients of
the training device can score somewhat higher than this calibration expects: the measured rates
are in docs/shift.md (``benchmarks/shift_auroc.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from segclr.models import UNet

SHIFT_PREFIX = "shift."
FLAG_QUANTILE = 0.99


@torch.no_grad()
def bottleneck_embeddings(net: UNet, images: Tensor, batch_size: int = 16) -> Tensor:
    """(N, 1, H, W) padded working-resolution images -> (N, C) pooled bottleneck features."""
    was_training = net.training
    net.eval()
    out = [pooled_bottleneck(net.encode(images[i:i + batch_size])[-1]) for i in range(0, len(images), batch_size)]
    net.train(was_training)
    return torch.cat(out)


def pooled_bottleneck(features: Tensor) -> Tensor:
    """(N, C, h, w) bottleneck feature maps -> (N, C) float64 embeddings on the CPU (for callers that
    already ran the encoder, e.g. :meth:`segclr.inference.predict.Predictor.predict_with_scores`)."""
    return features.mean(dim=(-2, -1)).double().cpu()


def _gaussian(x: Tensor, shrinkage: float) -> dict[str, Tensor]:
    """Mean and precision (inverse of a shrunk covariance) of the rows of ``x``."""
    mean = x.mean(0)
    cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    # Ledoit-Wolf-style shrinkage towards a scaled identity keeps the inverse stable with few samples
    target = torch.eye(len(cov), dtype=cov.dtype, device=cov.device) * cov.diagonal().mean().clamp_min(1e-12)
    return {"mean": mean, "precision": torch.linalg.inv((1 - shrinkage) * cov + shrinkage * target)}


def heldout_scores(embeddings: Tensor, groups, shrinkage: float = 0.1) -> Tensor:
    """Each row's score under a Gaussian fitted without its group (leave-one-group-out)."""
    x = embeddings.double()
    groups = np.asarray(groups)
    out = torch.empty(len(x), dtype=torch.float64, device=x.device)
    for g in np.unique(groups):
        held = torch.from_numpy(groups == g).to(x.device)
        out[held] = shift_scores(x[held], _gaussian(x[~held], shrinkage))
    return out


def conformal_threshold(scores: Tensor, alpha: float = 1 - FLAG_QUANTILE) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest held-out score, or the largest when n is too small."""
    ordered = torch.sort(scores.double()).values
    k = math.ceil((len(ordered) + 1) * (1 - alpha))
    return float(ordered[min(k, len(ordered)) - 1])


def fit_shift_statistics(embeddings: Tensor, shrinkage: float = 0.1, groups=None) -> dict[str, Tensor]:
    """Mean, precision and the flag threshold of training embeddings.

    With ``groups`` (one id per row, e.g. the volume of each B-scan; at least 3 distinct ids,
    each group at most half the rows) the threshold is calibrated on leave-one-group-out scores
    (see the module doc); otherwise on the in-sample scores' 99th percentile, which flags
    more than 1 % of new in-distribution data.
    ``stats["calibration"]`` holds (number of held-out scores, number of groups; 0 groups = in-sample).
    """
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"need at least 2 embeddings of shape (N, C), got {tuple(embeddings.shape)}")
    x = embeddings.double()
    stats = _gaussian(x, shrinkage)
    ids = None if groups is None else np.asarray(groups)
    if ids is not None and len(ids) != len(x):
        raise ValueError(f"groups has {len(ids)} entries for {len(x)} embeddings")
    usable = ids is not None and len(np.unique(ids)) >= 3 and max(np.unique(ids, return_counts=True)[1]) * 2 <= len(x)
    if usable:
        stats["threshold"] = torch.tensor([conformal_threshold(heldout_scores(x, ids, shrinkage))])
        stats["calibration"] = torch.tensor([float(len(x)), float(len(np.unique(ids)))])
    else:
        stats["threshold"] = torch.quantile(shift_scores(x, stats), FLAG_QUANTILE).reshape(1)
        stats["calibration"] = torch.tensor([float(len(x)), 0.0])
    return stats


def format_comparison(score: float, threshold: float) -> str:
    """``"0.3127 > 0.3102"``: enough digits that the two numbers visibly differ."""
    for digits in range(2, 8):
        a, b = f"{score:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b:
            break
    op = ">" if score > threshold else "<=" if score <= threshold else "?"
    return f"{a} {op} {b}"


def shift_scores(embeddings: Tensor, stats: dict[str, Tensor]) -> Tensor:
    """Squared Mahalanobis distance / dimension, one per row."""
    d = embeddings.double() - stats["mean"].double()
    return ((d @ stats["precision"].double()) * d).sum(1) / d.shape[1]


def to_bundle_tensors(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    return {SHIFT_PREFIX + k: v.float() for k, v in stats.items()}


def split_bundle_tensors(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """Separate the UNet weights from the stored shift statistics (None for older bundles)."""
    weights = {k: v for k, v in state.items() if not k.startswith(SHIFT_PREFIX)}
    stats = {k[len(SHIFT_PREFIX):]: v for k, v in state.items() if k.startswith(SHIFT_PREFIX)}
    return weights, (stats or None)


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve for "positives score higher" (Mann-Whitney U / (n_pos n_neg))."""
    from scipy.stats import rankdata

    neg, pos = np.asarray(negatives, float), np.asarray(positives, float)
    ranks = rankdata(np.concatenate([neg, pos]))
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))
