"""Supervised objective: Dice(+CE) on augmented labeled slices (baseline and upper bound)."""

from __future__ import annotations

from torch import nn

from segclr.config import RunConfig
from segclr.losses import make_supervised_loss
from segclr.models import UNet
from segclr.objectives.base import Objective, StepOutput


class SupervisedObjective(Objective):
    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__(cfg, net)
        self.sup_loss = make_supervised_loss(cfg.objective.sup_loss, cfg.model.num_classes)

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:
        x, y = self.labeled_batch(augment, batch["labeled"])
        loss = self.sup_loss(net(x), y)
        return StepOutput(loss, {"loss/sup": loss.detach()})
