"""The LightningModule: one training step of any objective, augmentation on the device."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from segclr.config import RunConfig, from_dict
from segclr.data.augment import BatchAugment
from segclr.models import UNet
from segclr.objectives import build_objective


def build_unet(cfg: RunConfig) -> UNet:
    m = cfg.model
    return UNet(1, m.num_classes, m.base_channels, m.depth, m.norm, m.dropout)


class SegCLRModule(L.LightningModule):
    """Wraps the UNet, the objective's training-only modules and the batched augmentation.

    ``config`` is the plain-dict form of a :class:`RunConfig` (so checkpoints stay loadable
    with ``weights_only=True``).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg = from_dict(config)
        self.net = build_unet(self.cfg)
        self.objective = build_objective(self.cfg, self.net)
        self.augment = BatchAugment(self.cfg.augment)

    def describe(self) -> str:
        return self.objective.describe(self.net) or f"UNet {sum(p.numel() for p in self.net.parameters()):,} parameters"

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, tuple):  # CombinedLoader yields (batch, batch_idx, dataloader_idx)
            batch = batch[0]
        out = self.objective.step(self.net, batch, self.augment)
        n = batch["labeled"]["image"].shape[0]
        self.log("loss/total", out.loss.detach(), prog_bar=True, batch_size=n, sync_dist=False)
        for key, value in out.logs.items():
            self.log(key, value, prog_bar=key == "loss/sup", batch_size=n)
        return out.loss

    def configure_optimizers(self):
        t = self.cfg.trainer
        opt = torch.optim.AdamW(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t.max_steps), eta_min=t.lr * 0.05)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
