"""What every objective provides: its extra trainable modules and the loss of one step."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from segclr.config import RunConfig
from segclr.models import UNet


@dataclass
class StepOutput:
    loss: Tensor
    logs: dict[str, Tensor | float] = field(default_factory=dict)


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


def augment_labeled(augment: nn.Module, batch: dict) -> tuple[Tensor, Tensor]:
    return augment(batch["image"], batch["mask"])


def build_objective(cfg: RunConfig, net: UNet) -> Objective:
    """One objective class per family of modes (a mode is a config plus at most one class)."""
    from segclr.objectives.adaptation import DANNObjective, EntropyMinObjective
    from segclr.objectives.segclr import SegCLRObjective
    from segclr.objectives.supervised import SupervisedObjective

    if cfg.uses_contrastive:  # segclr_uda, segclr_dg, multi_domain, ssl_pretrain
        return SegCLRObjective(cfg, net)
    if cfg.objective.mode == "dann":
        return DANNObjective(cfg, net)
    if cfg.objective.mode == "entropy_min":
        return EntropyMinObjective(cfg, net)
    return SupervisedObjective(cfg, net)  # supervised, upper_bound, finetune, adabn


