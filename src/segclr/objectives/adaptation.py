"""Domain-adaptation baselines of the study: DANN, ADVENT-style entropy minimisation, AdaBN.

* :class:`DANNObjective` (Ganin et al., JMLR 2016): a domain classifier on the pooled
  bottleneck features learns source vs target through a gradient-reversal layer, so the
  encoder is pushed towards features the classifier cannot separate.
* :class:`EntropyMinObjective` (Vu et al., ADVENT, CVPR 2019, its direct entropy term):
  minimise the mean per-pixel entropy of the softmax prediction on unlabeled target images.
* :func:`adapt_batchnorm` (Li et al., AdaBN, 2016): after supervised training, re-estimate the
  BatchNorm running statistics on all target-train images in one pass; nothing else changes.

DANN and entropy minimisation pass target images through the network with the labeled batch;
``objective.bn_stats=labeled`` keeps them out of its BatchNorm statistics (see ``forward_split``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segclr.config import RunConfig
from segclr.models import UNet
from segclr.objectives.base import Objective, StepOutput, forward_split, supervised_loss


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: Tensor, coeff: float = 1.0) -> Tensor:
    """Identity forward; multiplies the gradient by ``-coeff`` backward (the GRL)."""
    return _ReverseGrad.apply(x, coeff)


def grl_coefficient(progress: float) -> float:
    """DANN's schedule 2 / (1 + exp(-10 p)) - 1: 0 at the start, -> 1 at the end of training."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


def _target_images(objective: Objective, batch: dict, augment: nn.Module) -> Tensor:
    views = [augment(batch[d]["view1"])[0] for d in objective.cfg.unlabeled_domains]
    return torch.cat(views)


class DANNObjective(Objective):
    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__(cfg, net)
        self.sup_loss = supervised_loss(cfg)
        channels = net.feature_info[-1].channels
        self.domain_classifier = nn.Sequential(nn.Linear(channels, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:
        x, y = self.labeled_batch(augment, batch["labeled"])
        xt = _target_images(self, batch, augment)
        feats = forward_split(net, net.encode, x, [xt], self.cfg.objective.bn_stats)
        n = len(x)
        sup = self.sup_loss(net.decode([f[:n] for f in feats]), y)
        pooled = reverse_gradient(feats[-1].mean(dim=(-2, -1)), grl_coefficient(self.progress))
        logits = self.domain_classifier(pooled)[:, 0]
        labels = torch.cat([torch.zeros(n), torch.ones(len(xt))]).to(logits)
        adv = F.binary_cross_entropy_with_logits(logits, labels)
        acc = ((logits > 0).float() == labels).float().mean()
        loss = sup + self.cfg.objective.dann_weight * adv
        return StepOutput(loss, {"loss/sup": sup.detach(), "loss/domain": adv.detach(), "domain_acc": acc})


class EntropyMinObjective(Objective):
    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__(cfg, net)
        self.sup_loss = supervised_loss(cfg)

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:
        x, y = self.labeled_batch(augment, batch["labeled"])
        xt = _target_images(self, batch, augment)
        logits = forward_split(net, net, x, [xt], self.cfg.objective.bn_stats)
        n = len(x)
        sup = self.sup_loss(logits[:n], y)
        p = torch.softmax(logits[n:], dim=1)
        # normalised by log(C) so the term lies in [0, 1] whatever the number of classes
        entropy = -(p * torch.log(p.clamp_min(1e-8))).sum(1).mean() / math.log(p.shape[1])
        loss = sup + self.cfg.objective.entropy_weight * entropy
        return StepOutput(loss, {"loss/sup": sup.detach(), "loss/entropy": entropy.detach()})


@torch.no_grad()
def adapt_batchnorm(net: UNet, images: Tensor, max_images: int = 256) -> int:
    """Replace every BatchNorm's running mean/var by the statistics of ``images`` (N, 1, H, W).

    One forward pass over all the images at once, so every B-scan weighs the same and the
    statistics are those of the whole set (batches averaged with equal weight would let a final
    batch of one B-scan set a third of the mean). More than ``max_images`` B-scans (memory) are
    thinned to that many, evenly spaced. Only BatchNorm buffers change. Returns the number of
    BatchNorm layers adapted.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or len(images) == 0:
        return 0
    if len(images) > max_images:
        images = images[torch.linspace(0, len(images) - 1, max_images, device=images.device).round().long()]
    was_training = net.training
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1.0  # running = this pass's batch statistics, exactly
    net.train()
    net(images)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    net.train(was_training)
    return len(bns)
