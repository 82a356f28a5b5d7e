"""Validation curves during ``fit``: the held-out source patients (``data.val_patients``) scored every
``trainer.val_every_n_steps`` steps.

The split comes from the labeled *training* patients, so recipe choices (training length, schedule,
post-processing) are made without the test patients. Scores are computed on the working grid (the
B-scans as the network sees them, padded and un-padded), with the nnU-Net rule per B-scan (both
masks empty: left out) and pooled over all B-scans; ``val/dice_pooled`` and ``val/dice_per_bscan``
go to the run's ``logs/metrics.csv`` next to the losses.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from segclr.data.preprocess import pad_to_multiple
from segclr.evaluation.metrics import confusion, dice_from_counts, nanmean


@torch.no_grad()
def score_working_volumes(net: torch.nn.Module, volumes: list, pad_multiple: int, fluid: int = 1) -> dict:
    """Pooled Dice and mean Dice per B-scan of ``net`` (eval mode) on working-resolution volumes."""
    was_training = net.training
    net.eval()
    tp = fp = fn = 0
    per_bscan: list[float] = []
    try:
        device = next(net.parameters()).device
        for vol in volumes:
            h, w = vol.images.shape[-2:]
            x, _ = pad_to_multiple(vol.images, pad_multiple)
            pred = torch.max(net(x.to(device))[..., :h, :w], dim=1).indices.cpu().numpy()
            for p, r in zip(pred, vol.masks.numpy()):
                t, f_p, f_n = confusion(p, r, fluid)
                tp, fp, fn = tp + t, fp + f_p, fn + f_n
                if t + f_p + f_n:  # nnU-Net rule: both empty -> no Dice
                    per_bscan.append(dice_from_counts(t, f_p, f_n))
    finally:
        net.train(was_training)
    return {"dice_pooled": dice_from_counts(tp, fp, fn), "dice_per_bscan": nanmean(per_bscan)}


class ValidationCurve(Callback):
    """Scores the validation volumes every ``every`` steps and at the last step; logs ``val/*``.

    With ``path``, the curve so far is (re)written there after each score (rank 0), so a run stopped
    before its end keeps the curve it reached.
    """

    def __init__(self, volumes: list, pad_multiple: int, every: int, path=None) -> None:
        self.volumes, self.pad_multiple, self.every = volumes, pad_multiple, max(1, every)
        self.path = path
        self.history: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every and step < trainer.max_steps:
            return
        if self.history and self.history[-1]["step"] == step:
            return
        scores = score_working_volumes(pl_module.net, self.volumes, self.pad_multiple)
        self.history.append({"step": step, **scores})
        for key, value in scores.items():
            pl_module.log(f"val/{key}", value, on_step=True, on_epoch=False, batch_size=1)
        if self.path is not None and trainer.is_global_zero:
            write_val_curve(self.path, self.history)


def write_val_curve(path, history: list[dict]) -> None:
    """``step,dice_pooled,dice_per_bscan`` rows, written atomically (a resumed run's rows replace the old file)."""
    from segclr.io.atomic import atomic_write_text

    lines = ["step,dice_pooled,dice_per_bscan"] + [
        f"{h['step']},{h['dice_pooled']:.6f},{h['dice_per_bscan']:.6f}" for h in history]
    atomic_write_text(path, "\n".join(lines) + "\n")
