"""Supervised objective: Dice(+CE) on augmented labeled slices (baseline, upper bound, SVDNA)."""

from __future__ import annotations

from torch import nn

from segclr.config import RunConfig
from segclr.data.svdna import build_restyle, restyled_labeled
from segclr.models import UNet
from segclr.objectives.base import Objective, StepOutput, supervised_loss


class SupervisedObjective(Objective):
    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__(cfg, net)
        self.sup_loss = supervised_loss(cfg)
        self.svdna = build_restyle(cfg)  # mode svdna: labeled crops restyled toward target crops

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:
        x, y = self.labeled_batch(augment, restyled_labeled(self.svdna, batch, augment))
        loss = self.sup_loss(net(x), y)
        return StepOutput(loss, {"loss/sup": loss.detach()})
