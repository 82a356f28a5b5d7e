"""Supervised objective: Dice(+CE) on augmented labeled slices (baseline, upper bound, SVDNA).

With ``objective.deep_supervision`` (nnU-Net's deep supervision) the objective owns 1x1 heads on the
decoder's coarser levels and adds their losses against labels resampled to each level, weighted 1, 1/2,
1/4, ... from the finest (the coarsest level gets none). The heads train the decoder and are not part of
the saved model: inference is unchanged.
"""

from __future__ import annotations

from torch import nn

from segclr.config import RunConfig
from segclr.data.svdna import build_restyle, restyled_labeled
from segclr.losses import DeepSupervisionLoss, deep_supervision_weights
from segclr.models import UNet, count_parameters
from segclr.objectives.base import Objective, StepOutput, supervised_loss


class SupervisedObjective(Objective):
    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__(cfg, net)
        self.sup_loss = supervised_loss(cfg)
        self.svdna = build_restyle(cfg)  # mode svdna: labeled crops restyled toward target crops
        self.ds_heads: nn.ModuleList | None = None
        if cfg.objective.deep_supervision:
            n_levels = len(net.decoder)
            weights = deep_supervision_weights(n_levels)
            if len(weights) < 2:
                raise ValueError(f"deep supervision needs a decoder of >= 3 levels, this UNet has {n_levels}")
            top = len(net.feature_info) - 1
            # auxiliary output k (k = 1 is the second finest) sits on decoder level n_levels - 1 - k,
            # whose channels are those of encoder stage top - 1 - (n_levels - 1 - k)
            self.ds_heads = nn.ModuleList(
                nn.Conv2d(net.feature_info[top - n_levels + k].channels, cfg.model.num_classes, 1)
                for k in range(1, len(weights))
            )
            self.ds_loss = DeepSupervisionLoss(self.sup_loss, weights)

    def describe(self, net: UNet) -> str:
        if self.ds_heads is None:
            return ""
        return (f"UNet {count_parameters(net):,} parameters; deep supervision: {len(self.ds_heads)} auxiliary heads "
                "(training "
                f"only), weights finest first " + ", ".join(f"{w:.3f}" for w in self.ds_loss.weights))

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:
        x, y = self.labeled_batch(augment, restyled_labeled(self.svdna, batch, augment))
        if self.ds_heads is None:
            loss = self.sup_loss(net(x), y)
            return StepOutput(loss, {"loss/sup": loss.detach()})
        levels = net.decode_levels(net.encode(x))
        outputs = [net.output(levels[-1])] + [head(levels[-1 - k]) for k, head in enumerate(self.ds_heads, start=1)]
        terms = self.ds_loss.terms(outputs, y)
        loss = self.ds_loss.combine(terms)
        return StepOutput(loss, {"loss/sup": terms[0].detach(), "loss/deep_sup": loss.detach()})
