"""What every objective provides: its extra trainable modules and the loss of one step."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor, nn

from segclr.config import RunConfig
from segclr.losses import make_supervised_loss
from segclr.models import UNet


@dataclass
class StepOutput:
    loss: Tensor
    logs: dict[str, Tensor | float] = field(default_factory=dict)


def supervised_loss(cfg: RunConfig) -> nn.Module:
    """L_sup as the config asks for it (kind, classes, batch or per-image Dice, CE class weight, blob Dice): one place
    for every objective."""
    return make_supervised_loss(cfg.objective.sup_loss, cfg.model.num_classes, batch=cfg.objective.dice_batch,
                                ce_fluid_weight=cfg.objective.ce_fluid_weight, blob_weight=cfg.objective.blob_weight)


class Objective(nn.Module):
    """Base class: holds training-only modules (heads); ``step`` returns the total loss."""

    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__()
        self.cfg = cfg
        self.progress = 0.0  # fraction of training done, set by the module before each step

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, net: UNet) -> str:
        return ""

    def labeled_batch(self, augment: nn.Module, batch: dict) -> tuple[Tensor, Tensor]:
        """The labeled images and masks of the step, augmented unless ``augment.labeled`` is off.

        Then, with ``augment.overlay_prob`` > 0 (also when ``augment.labeled`` is off: the overlays are
        label-preserving robustness, not photometric augmentation), synthetic burned-in overlays with
        label 0 (:mod:`segclr.data.overlays_aug`), drawn from ``augment.generator`` (the training
        module's per-step seeded one) or, when ``augment`` has none, from a generator of this
        objective seeded from ``trainer.seed``. With ``overlay_prob == 0`` nothing is drawn.
        """
        if not self.cfg.augment.labeled:
            images, masks = batch["image"], batch["mask"]
        else:
            images, masks = augment_labeled(augment, batch)
        p = self.cfg.augment.overlay_prob
        if p > 0:
            from segclr.data.overlays_aug import burn_overlays

            gen = getattr(augment, "generator", None)
            if not isinstance(gen, torch.Generator):  # a bare BatchAugment: this objective's own stream
                if getattr(self, "_overlay_gen", None) is None:
                    self._overlay_gen = torch.Generator().manual_seed(self.cfg.trainer.seed * 1_000_003 + 17)
                gen = self._overlay_gen
            out = burn_overlays(images, masks, p, gen)
            images, masks = out.images, out.masks
        return images, masks


def augment_labeled(augment: nn.Module, batch: dict) -> tuple[Tensor, Tensor]:
    return augment(batch["image"], batch["mask"])


@contextmanager
def running_stats_frozen(net: nn.Module) -> Iterator[None]:
    """BatchNorm layers keep normalising with batch statistics but leave their running statistics alone."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum


def forward_split(net: nn.Module, fn, labeled: Tensor | None, unlabeled: list[Tensor], bn_stats: str):
    """``fn`` (``net.encode`` or ``net`` itself) over the labeled batch followed by the unlabeled images.

    ``bn_stats="joint"``: one pass over everything, so BatchNorm statistics mix the domains.
    ``"labeled"``: two passes; the unlabeled one neither shares batch statistics with the labeled
    images nor updates the running statistics. Returns what one joint pass would (tensors or
    lists of tensors concatenated along the batch).
    """
    parts = ([labeled] if labeled is not None else []) + list(unlabeled)
    if bn_stats == "joint" or labeled is None or not unlabeled:
        return fn(torch.cat(parts))
    out_l = fn(labeled)
    with running_stats_frozen(net):
        out_u = fn(torch.cat(list(unlabeled)))
    if isinstance(out_l, Tensor):
        return torch.cat([out_l, out_u])
    return [torch.cat([a, b]) for a, b in zip(out_l, out_u)]


def build_objective(cfg: RunConfig, net: UNet) -> Objective:
    """One objective class per family of modes (a mode is a config plus at most one class)."""
    from segclr.objectives.adaptation import DANNObjective, EntropyMinObjective
    from segclr.objectives.segclr import SegCLRObjective
    from segclr.objectives.supervised import SupervisedObjective

    if cfg.uses_contrastive:  # segclr_uda, segclr_dg, multi_domain, ssl_pretrain, svdna_segclr_uda
        return SegCLRObjective(cfg, net)
    if cfg.objective.mode == "dann":
        return DANNObjective(cfg, net)
    if cfg.objective.mode == "entropy_min":
        return EntropyMinObjective(cfg, net)
    return SupervisedObjective(cfg, net)  # supervised, upper_bound, finetune, adabn, svdna


