"""The LightningModule: one training step of any objective, augmentation on the device.

Two guarantees beyond the objective's math:

* **Reproducible resume.** Augmentation draws from a generator seeded by (seed, step), and the
  data streams are counter-based, so a run resumed from a checkpoint makes the same draws as
  an uninterrupted one (on CPU with a fixed seed: identical final weights).
* **Non-finite guard.** A step whose inputs or loss are NaN/Inf is skipped (no optimizer step)
  and counted; after ``trainer.max_bad_steps`` consecutive bad steps training stops with
  :class:`NonFiniteError`, naming the cause and the last checkpoint.
"""

from __future__ import annotations

import math

from typing import Any

import lightning as L
import torch

from segclr.config import RunConfig, from_dict
from segclr.data.augment import BatchAugment
from segclr.inference.shift import split_bundle_tensors
from segclr.io.bundle import load_bundle
from segclr.io.images import InputError
from segclr.models import UNet
from segclr.objectives import build_objective
from segclr.training.errors import NonFiniteError


def build_unet(cfg: RunConfig) -> UNet:
    m = cfg.model
    return UNet(1, m.num_classes, m.base_channels, m.depth, m.norm, m.dropout, m.stem)


def load_unet_weights(net: UNet, bundle_path: str) -> None:
    state, _ = split_bundle_tensors(load_bundle(bundle_path)[0])  # drop the stored shift statistics
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{bundle_path}: its UNet does not match this config's model section ({err})") from None


def _first_nonfinite_input(batch: dict, prefix: str = "") -> str | None:
    for key, value in batch.items():
        if isinstance(value, dict):
            found = _first_nonfinite_input(value, f"{prefix}{key}.")
            if found:
                return found
        elif torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            return f"{prefix}{key}"
    return None


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
        if self.cfg.objective.init_from:  # finetune: start from a (pretrained) model bundle
            load_unet_weights(self.net, self.cfg.objective.init_from)
        self.objective = build_objective(self.cfg, self.net)
        self.augment = BatchAugment(self.cfg.augment)
        self.bad_steps = 0          # consecutive skipped steps
        self.skipped_steps = 0      # total skipped steps
        self.last_checkpoint = "none yet"
        self.checkpoint_dir = "checkpoints"  # set by fit() to the run's folder

    def describe(self) -> str:
        return self.objective.describe(self.net) or f"UNet {sum(p.numel() for p in self.net.parameters()):,} parameters"

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, tuple):  # CombinedLoader yields (batch, batch_idx, dataloader_idx)
            batch = batch[0]
        cause = _first_nonfinite_input(batch)
        out = None
        if cause is None:
            self.objective.progress = self.global_step / max(1, self.cfg.trainer.max_steps)
            gen = torch.Generator(device="cpu").manual_seed(self.cfg.trainer.seed * 1_000_003 + self.global_step)
            out = self.objective.step(self.net, batch, _Seeded(self.augment, gen))
            if not torch.isfinite(out.loss):
                bad = [k for k, v in out.logs.items() if torch.is_tensor(v) and not torch.isfinite(v).all()]
                cause = f"non-finite loss ({', '.join(bad) or 'total'})"
        else:
            cause = f"non-finite input pixels in {cause}"
        if self.trainer.strategy.reduce_boolean_decision(cause is not None, all=False):
            return self._skip(cause or "non-finite value on another rank")
        self.bad_steps = 0
        n = next(iter(next(iter(batch.values())).values())).shape[0]
        self.log("loss/total", out.loss.detach(), prog_bar=True, batch_size=n, sync_dist=False)
        for key, value in out.logs.items():
            self.log(key, value, prog_bar=key == "loss/sup", batch_size=n)
        return out.loss

    def _skip(self, cause: str) -> None:
        self.bad_steps += 1
        self.skipped_steps += 1
        self.log("skipped_steps", float(self.skipped_steps))
        limit = self.cfg.trainer.max_bad_steps
        if self.bad_steps >= limit:
            raise NonFiniteError(
                f"{self.bad_steps} consecutive training steps skipped (limit trainer.max_bad_steps={limit}) at step "
                f"{self.global_step}: {cause}. Last good checkpoint: {self.last_checkpoint}. Lower trainer.lr, "
                f"check the input images, or resume from that checkpoint."
            )
        return None  # Lightning skips backward and the optimizer step

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["segclr_skipped_steps"] = self.skipped_steps
        self.last_checkpoint = f"{self.checkpoint_dir}/last.ckpt (step {self.global_step})"

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.skipped_steps = int(checkpoint.get("segclr_skipped_steps", 0))

    def configure_optimizers(self):
        t = self.cfg.trainer
        opt = torch.optim.AdamW(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        if t.schedule == "cosine" and t.warmup_steps == 0:  # the original schedule, kept bit-identical
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t.max_steps), eta_min=t.lr * 0.05)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, LRFactor(t.schedule, t.warmup_steps, t.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class LRFactor:
    """Learning-rate factor at a step: linear warm-up from 1/warmup to 1 over ``warmup`` steps, then
    ``cosine`` (to 0.05, like the default schedule), ``poly`` (nnU-Net's (1 - t)^0.9) or ``constant``.

    A plain object (not a closure), so LambdaLR saves its fields in checkpoints and a resume that
    extends training can stretch ``total``.
    """

    def __init__(self, kind: str, warmup: int, total: int) -> None:
        self.kind, self.warmup, self.total = kind, int(warmup), max(1, int(total))

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        t = min(1.0, (step - self.warmup) / span)
        if self.kind == "poly":
            return (1.0 - t) ** 0.9
        if self.kind == "cosine":
            return 0.05 + 0.95 * (1 + math.cos(math.pi * t)) / 2
        return 1.0


class _Seeded(torch.nn.Module):
    """Calls ``augment`` with a fixed generator (so each step's draws depend on the step only)."""

    def __init__(self, augment: torch.nn.Module, generator: torch.Generator) -> None:
        super().__init__()
        self.augment, self.generator = augment, generator

    def forward(self, images, masks=None):
        return self.augment(images, masks, generator=self.generator)
