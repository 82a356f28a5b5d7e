"""Supervised segmentation loss (Dice or Dice + cross-entropy) built from MONAI.

From ``segclr`` it imports only the blob Dice of :mod:`segclr.losses.blob`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segclr.losses.blob import blob_dice_loss

__all__ = ["SUPERVISED_LOSS_KINDS", "DeepSupervisionLoss", "SupervisedSegLoss", "deep_supervision_weights",
           "downsample_labels", "make_supervised_loss"]

SUPERVISED_LOSS_KINDS = ("dice", "dice_ce")


class SupervisedSegLoss(nn.Module):
    """Dice / Dice+CE on logits (B, C, H, W) and integer labels (B, H, W).

    Wraps a MONAI loss and adds the channel dimension MONAI expects on the labels. Build it with
    ``make_supervised_loss``; see there for the choice of options.
    """

    def __init__(self, loss: nn.Module, num_classes: int, blob_weight: float = 0.0) -> None:
        super().__init__()
        self.loss = loss
        self.num_classes = num_classes
        self.blob_weight = float(blob_weight)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have shape (B, {self.num_classes}, H, W), got {tuple(logits.shape)}"
            )
        expected = (logits.shape[0], *logits.shape[2:])
        if labels.shape != expected:
            raise ValueError(
                f"labels must have shape (B, H, W) = {expected}, got {tuple(labels.shape)}"
            )
        if labels.is_floating_point():
            raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")
        target = labels.unsqueeze(1)
        # Binary (sigmoid) mode: MONAI's BCE needs a float target of the logits' dtype.
        target = target.to(logits.dtype) if self.num_classes == 1 else target.long()
        loss = self.loss(logits, target)
        if self.blob_weight:
            loss = loss + self.blob_weight * blob_dice_loss(logits, labels)
        return loss


class _DiceWeightedCE(nn.Module):
    """Dice (without background) + cross-entropy whose fluid classes weigh ``fluid_weight`` x the background."""

    def __init__(self, dice: nn.Module, num_classes: int, fluid_weight: float) -> None:
        super().__init__()
        self.dice = dice
        self.register_buffer("weight", torch.tensor([1.0] + [float(fluid_weight)] * (num_classes - 1)))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, target[:, 0].long(), weight=self.weight.to(logits.dtype))
        return self.dice(logits, target) + ce


def make_supervised_loss(kind: str, num_classes: int, *, batch: bool = True,
                         ce_fluid_weight: float = 1.0, blob_weight: float = 0.0) -> nn.Module:
    """Supervised loss L_sup of SegCLR: ``"dice"`` or ``"dice_ce"`` (Dice + cross-entropy).

    The returned module takes raw logits (B, C, H, W), C = ``num_classes`` (background included,
    e.g. 4 for RETOUCH: background, IRF, SRF, PED), and integer labels (B, H, W) in [0, C).

    Choices, and why:
        - ``num_classes > 1``: softmax over all C channels, labels one-hot encoded, and
          ``include_background=False`` in the Dice term. The background still shapes the result
          through the softmax (raising fluid probability lowers background probability), but its
          own Dice (close to 1 on OCT, where fluid covers well under 1 % of a B-scan) would
          otherwise dilute the mean over classes and hide failures on the fluid classes. The
          cross-entropy term of ``"dice_ce"`` always covers all C classes, background included.
        - ``num_classes == 1``: binary foreground logits with a sigmoid (BCE for ``"dice_ce"``);
          the single channel is the foreground, so it is kept.
        - ``batch=True`` (default): the Dice sums intersections and volumes over the whole batch
          per class before dividing ("batch Dice"). Most B-scans contain no fluid of a given class;
          a per-slice soft Dice on such an empty class is ~1 whatever the prediction (tiny
          gradient, noisy loss), while the batch Dice stays informative.
        - ``batch=False`` (config ``objective.dice_batch: false``): Dice per image, averaged over
          the batch. Every crop with fluid then counts the same, whatever the pocket's size; a
          crop without fluid adds a near-constant term with almost no gradient (the cross-entropy
          of ``"dice_ce"`` still trains on it).
        - ``ce_fluid_weight`` (config ``objective.ce_fluid_weight``): the weight of every fluid class
          in the cross-entropy of ``"dice_ce"``, the background's being 1 (multi-class only). Above 1
          a missed fluid pixel costs more than a false one, which pushes recall on small pockets.
          At 1 the loss is MONAI's ``DiceCELoss``, unchanged.
        - ``blob_weight`` (config ``objective.blob_weight``): adds this times the blob Dice of
          :func:`segclr.losses.blob.blob_dice_loss`, a soft Dice per reference fluid component, so a
          small pocket weighs as much as a large one. 0 (default) adds nothing.

    Raises:
        ValueError: unknown ``kind``, ``num_classes < 1``, or a ``ce_fluid_weight`` that is not
        positive or is set (not 1) where there is no weighted cross-entropy.
    """
    if kind not in SUPERVISED_LOSS_KINDS:
        raise ValueError(
            f"unknown supervised loss kind {kind!r}; expected one of {SUPERVISED_LOSS_KINDS}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if not ce_fluid_weight > 0:
        raise ValueError(f"ce_fluid_weight must be > 0, got {ce_fluid_weight!r}")
    if not blob_weight >= 0:
        raise ValueError(f"blob_weight must be >= 0, got {blob_weight!r}")
    weighted = ce_fluid_weight != 1.0
    if weighted and (kind != "dice_ce" or num_classes < 2):
        raise ValueError("ce_fluid_weight applies to the cross-entropy of 'dice_ce' with num_classes >= 2; "
                         f"got kind {kind!r}, num_classes {num_classes}")
    # Imported here so that `import segclr.losses` (e.g. for nt_xent alone, or in every spawned
    # DDP worker) does not pay for importing MONAI.
    from monai.losses import DiceCELoss, DiceLoss

    multiclass = num_classes > 1
    options = dict(
        include_background=not multiclass,
        to_onehot_y=multiclass,
        softmax=multiclass,
        sigmoid=not multiclass,
        batch=batch,
    )
    if weighted:
        loss = _DiceWeightedCE(DiceLoss(**options), num_classes, ce_fluid_weight)
    else:
        loss = DiceLoss(**options) if kind == "dice" else DiceCELoss(**options)
    return SupervisedSegLoss(loss, num_classes, blob_weight)


def deep_supervision_weights(n_outputs: int) -> list[float]:
    """nnU-Net's weights for outputs finest first: 1, 1/2, 1/4, ..., the coarsest 0, normalised to sum 1.

    With ``n_outputs`` decoder outputs the coarsest gets no weight, so it has no head at all; the result
    has ``n_outputs - 1`` entries (one output alone: ``[1.0]``).
    """
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    raw = [0.5**i for i in range(max(n_outputs - 1, 1))]
    return [w / sum(raw) for w in raw]


def downsample_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Integer labels (B, H, W) at ``size`` by nearest-neighbour sampling (nnU-Net's order-0 resampling)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].to(labels.dtype)


class DeepSupervisionLoss(nn.Module):
    """``loss`` over several outputs (finest first) against labels resampled to each, weighted and summed.

    ``weights`` (one per output, e.g. :func:`deep_supervision_weights`) are applied in order; the first
    output is the network's own, at the labels' size.
    """

    def __init__(self, loss: nn.Module, weights: list[float]) -> None:
        super().__init__()
        if not weights:
            raise ValueError("weights must name at least one output")
        self.loss = loss
        self.weights = [float(w) for w in weights]

    def terms(self, outputs: list[Tensor], labels: Tensor) -> list[Tensor]:
        """The unweighted loss of every output against the labels at its size."""
        if len(outputs) != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} outputs (one per weight), got {len(outputs)}")
        return [self.loss(logits, downsample_labels(labels, tuple(logits.shape[-2:]))) for logits in outputs]

    def combine(self, terms: list[Tensor]) -> Tensor:
        return sum((w * t for w, t in zip(self.weights[1:], terms[1:])), self.weights[0] * terms[0])

    def forward(self, outputs: list[Tensor], labels: Tensor) -> Tensor:
        return self.combine(self.terms(outputs, labels))
