"""Losses of SegCLR: supervised Dice(/CE), the blob Dice per fluid component, and contrastive NT-Xent / SimSiam.

Bottom layer: imports only torch, NumPy, SciPy and MONAI, nothing else from ``segclr``.
"""

from segclr.losses.blob import blob_dice_loss, label_components
from segclr.losses.contrastive import (
    NTXentLoss,
    SimSiamLoss,
    gather_no_grad,
    gather_with_grad,
    negatives_per_query,
    nt_xent,
    nt_xent_logits,
    simsiam_loss,
)
from segclr.losses.dice import (
    SUPERVISED_LOSS_KINDS,
    DeepSupervisionLoss,
    SupervisedSegLoss,
    deep_supervision_weights,
    make_supervised_loss,
)

__all__ = [
    "blob_dice_loss",
    "label_components",
    "NTXentLoss",
    "SimSiamLoss",
    "gather_no_grad",
    "gather_with_grad",
    "negatives_per_query",
    "nt_xent",
    "nt_xent_logits",
    "simsiam_loss",
    "SUPERVISED_LOSS_KINDS",
    "DeepSupervisionLoss",
    "deep_supervision_weights",
    "SupervisedSegLoss",
    "make_supervised_loss",
]
