"""Domain-shift warning: how unlike the training data does a B-scan (or volume) look?

At the end of training, the UNet's bottleneck features of the training images (every labeled
and unlabeled training domain) are average-pooled into one vector per B-scan; their mean and
a shrunk covariance are stored in the model bundle. At prediction, each B-scan's squared
Mahalanobis distance to that distribution, divided by the feature dimension, is its *shift
score* (small for data like the training set; shrinkage puts it below 1 there). A volume's score is the mean over its
B-scans; it is flagged when above the 99th percentile of the training B-scans' scores, also
stored in the bundle.
"""

from __future__ import annotations

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
    out = [net.encode(images[i:i + batch_size])[-1].mean(dim=(-2, -1)) for i in range(0, len(images), batch_size)]
    net.train(was_training)
    return torch.cat(out).double().cpu()


def fit_shift_statistics(embeddings: Tensor, shrinkage: float = 0.1) -> dict[str, Tensor]:
    """Mean, precision (inverse of a shrunk covariance) and the flag threshold of training embeddings."""
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"need at least 2 embeddings of shape (N, C), got {tuple(embeddings.shape)}")
    x = embeddings.double()
    mean = x.mean(0)
    cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    # Ledoit-Wolf-style shrinkage towards a scaled identity keeps the inverse stable with few samples
    target = torch.eye(len(cov), dtype=cov.dtype) * cov.diagonal().mean().clamp_min(1e-12)
    precision = torch.linalg.inv((1 - shrinkage) * cov + shrinkage * target)
    stats = {"mean": mean, "precision": precision}
    scores = shift_scores(x, stats)
    stats["threshold"] = torch.quantile(scores, FLAG_QUANTILE).reshape(1)
    return stats


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
