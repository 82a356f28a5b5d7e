"""``fit``: build the Lightning Trainer for a :class:`RunConfig`, train, and write the run folder.

Run folder layout::

    OUT/config.yaml              resolved configuration (every default spelled out)
    OUT/checkpoints/last.ckpt    Lightning checkpoint, every ``checkpoint_every_n_steps`` (for --resume)
    OUT/logs/metrics.csv         training losses per logged step (+ TensorBoard events if enabled)
    OUT/model.safetensors        final UNet + preprocessing + provenance (for evaluate/predict)
    OUT/training_curves.png      the losses over steps
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from segclr import __version__
from segclr.config import RunConfig, dump_config, load_config
from segclr.data.datamodule import SegCLRDataModule
from segclr.data.domains import DomainBank
from segclr.data.preprocess import Preprocessing, pad_to_multiple
from segclr.objectives.adaptation import adapt_batchnorm
from segclr.evaluation.report import plot_training_curves
from segclr.inference.export import write_model_card
from segclr.inference.shift import bottleneck_embeddings, fit_shift_statistics, to_bundle_tensors
from segclr.io.atomic import atomic_write_text
from segclr.io.bundle import save_bundle
from segclr.io.images import InputError
from segclr.training.checkpointing import (AtomicCheckpointIO, check_resume_config, checkpoint_step,
                                           missing_keys)
from segclr.training.module import LRFactor, SegCLRModule
from segclr.training.validation import ValidationCurve

CLASS_NAMES = {2: ["background", "fluid"], 4: ["background", "IRF", "SRF", "PED"]}


@dataclass
class FitResult:
    out_dir: Path
    bundle: Path
    seconds: float
    steps: int


class _Describe(Callback):
    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            print(f"[segclr] {pl_module.cfg.objective.mode}: {pl_module.describe()}", flush=True)


class _PlainProgress(Callback):
    """One plain line every ``every`` optimizer steps: for logs, pipes and ``progress_bar=false``.

    Unlike a progress bar it writes no carriage returns, so a log file stays readable.
    """

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.start, self.first, self.last = 0.0, 0, -1

    def on_train_start(self, trainer, pl_module) -> None:
        self.start, self.first = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, trainer.max_steps
        if not trainer.is_global_zero or step == self.last or (step % self.every and step != total):
            return
        self.last = step
        losses = ", ".join(f"{k.split('/', 1)[1]} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                           if k.startswith("loss/"))
        elapsed = time.perf_counter() - self.start
        done = step - self.first
        left = f", about {_duration(elapsed / done * (total - step))} left" if done and step < total else ""
        print(f"[segclr] step {step}/{total}: {losses or 'no loss logged yet'} ({_duration(elapsed)}{left})",
              flush=True)


class _StretchSchedule(Callback):
    """A resume that extends ``trainer.max_steps`` stretches the cosine schedule to the new length.

    The checkpoint holds the scheduler of the original length; without this, the cosine would
    run past its end and oscillate. The learning rate continues from the new curve at the
    resume step (it rises again when a finished run is extended).
    """

    def on_train_start(self, trainer, pl_module) -> None:
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max != trainer.max_steps:
                sched.T_max = max(1, trainer.max_steps)
                t = min(sched.last_epoch, sched.T_max)
                for group, base in zip(sched.optimizer.param_groups, sched.base_lrs):
                    group["lr"] = sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * t / sched.T_max)) / 2
            elif isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
                for factor, group, base in zip(sched.lr_lambdas, sched.optimizer.param_groups, sched.base_lrs):
                    if isinstance(factor, LRFactor) and factor.total != trainer.max_steps:
                        factor.total = max(1, trainer.max_steps)
                        group["lr"] = base * factor(sched.last_epoch)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60:02d} s"


def progress_every(max_steps: int) -> int:
    """Steps between plain progress lines: about 20 lines per run, on round step numbers."""
    every = max(1, max_steps // 20)
    return every if every < 10 else every // 10 * 10


def class_names(num_classes: int) -> list[str]:
    return CLASS_NAMES.get(num_classes, ["background", *[f"class{i}" for i in range(1, num_classes)]])


def bundle_metadata(cfg: RunConfig, module: SegCLRModule, seconds: float, steps: int,
                    prep: Preprocessing | None = None) -> dict:
    # the run's preprocessing, with the target spacing the data module derived from the training data
    dm_prep = (prep or Preprocessing(cfg.data.input_height, 2**cfg.model.depth)).to_dict()
    return {
        "model": {k: getattr(cfg.model, k)
                  for k in ("num_classes", "base_channels", "depth", "norm", "dropout", "stem")},
        "preprocess": dm_prep,
        "classes": class_names(cfg.model.num_classes),
        "postprocess": dict(vars(cfg.postprocess)),
        "training": {
            "mode": cfg.objective.mode,
            "labeled_domain": cfg.labeled_domain,
            "unlabeled_domains": cfg.unlabeled_domains,
            "steps": steps,
            "seed": cfg.trainer.seed,
            "seconds": round(seconds, 1),
            "segclr_version": __version__,
            "config": cfg.to_dict(),
        },
    }


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX flags in ``/proc/cpuinfo``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_cpu_note(precision: str, accelerator: str, cpuinfo: str | None = None) -> str | None:
    """A warning line when bf16 training would run on a CPU without native bf16 (else None).

    Measured on a 2-core AVX2 AMD EPYC: bf16 autocast made the training step about 10x slower than
    fp32, while an AVX-512/AMX Xeon ran it 1.6-1.7x faster (docs/performance.md).
    """
    if not str(precision).startswith("bf16") or accelerator not in ("cpu", "auto") or (
            accelerator == "auto" and torch.cuda.is_available()):
        return None
    if cpu_has_native_bf16(cpuinfo):
        return None
    return (f"[segclr] warning: trainer.precision={precision} on a CPU without native bf16 (no avx512_bf16/amx_bf16 "
            f"flag): expect training several times slower than 32-true")


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")  # resume: history is merged back
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _prepend_history(path: Path, history: list[dict]) -> None:
    """Merge the pre-resume rows back in front of the resumed run's rows (steps never overlap)."""
    new = _read_rows(path)
    first_new = min((int(float(r["step"])) for r in new if r.get("step")), default=None)
    old = [r for r in history if first_new is None or int(float(r.get("step") or 0)) < first_new]
    fields = list(dict.fromkeys([k for r in old + new for k in r]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(old + new)
    atomic_write_text(path, buf.getvalue())


def _padded_images(volumes: list, data: SegCLRDataModule, device: torch.device) -> torch.Tensor:
    """All B-scans of working-resolution volumes, padded for the UNet, on ``device``."""
    images, _ = pad_to_multiple(torch.cat([v.images for v in volumes]), data.prep.pad_multiple)
    return images.to(device)


def _training_shift_statistics(module: SegCLRModule, data: SegCLRDataModule) -> dict[str, torch.Tensor]:
    """Bottleneck-feature statistics of every training B-scan, for the domain-shift warning."""
    unique = {(v.domain, v.patient): v for v in data._labeled + [v for vs in data._unlabeled.values() for v in vs]}
    vols = list(unique.values())  # a volume in both a labeled and an unlabeled stream counts once
    # volume by volume: working sizes may differ between volumes (pooled features do not)
    emb = torch.cat([bottleneck_embeddings(module.net, _padded_images([v], data, module.device)) for v in vols])
    groups = [k for k, v in enumerate(vols) for _ in range(len(v.images))]  # threshold: leave one volume out
    return to_bundle_tensors(fit_shift_statistics(emb, groups=groups))


def _check_ranks_in_sync(trainer: L.Trainer, module: SegCLRModule, out: Path) -> None:
    """DDP: every rank must end with the same weights; record the per-rank checksums."""
    flat = torch.cat([p.detach().double().flatten() for p in module.net.parameters()])
    weights = torch.arange(1, len(flat) + 1, dtype=flat.dtype, device=flat.device)
    checksum = torch.stack([flat.sum(), (flat * weights).sum()])
    # the strategy's device, not module.device: Lightning's teardown leaves the module on the CPU (fit
    # moves it back, but this must not depend on that), and NCCL gathers only CUDA tensors
    gathered = trainer.strategy.all_gather(checksum.to(trainer.strategy.root_device)).cpu().reshape(-1, 2)
    if trainer.is_global_zero:
        atomic_write_text(out / "ddp_check.json", json.dumps({"world_size": trainer.world_size,
                                                                  "weight_checksums": gathered.tolist()}))
    if not torch.allclose(gathered, gathered[:1].expand_as(gathered), rtol=1e-9, atol=0):
        raise RuntimeError(f"DDP ranks ended with different weights: checksums {gathered.tolist()}")


def _adapt_to_targets(module: SegCLRModule, data: SegCLRDataModule) -> None:
    """AdaBN: BatchNorm statistics of the trained UNet re-estimated on the target-train images."""
    parts = [v.images for vols in data._unlabeled.values() for v in vols]
    # one pass needs one size that the UNet accepts: every volume is cropped (top-left) to the smallest
    # working size rounded down to the padding multiple, never zero-padded, so no artificial pixels
    # enter the statistics
    m = data.prep.pad_multiple
    h = max(m, min(x.shape[-2] for x in parts) // m * m)
    w = max(m, min(x.shape[-1] for x in parts) // m * m)
    images = torch.cat([x[..., :h, :w] for x in parts]).to(module.device)
    n = adapt_batchnorm(module.net, images)
    print(f"[segclr] adabn: re-estimated {n} BatchNorm layers on {len(images)} target B-scans", flush=True)


def fit(cfg: RunConfig, out_dir: str | Path, resume: bool = False, bank: DomainBank | None = None) -> FitResult:
    """Train one run into ``out_dir``; with ``resume`` continue from ``out_dir/checkpoints/last.ckpt``."""
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        raise InputError(f"{last}: nothing to resume (no checkpoint in {out})")
    if not resume and (out / "model.safetensors").exists():
        raise InputError(f"{out}: already holds a finished run; use --resume or another --out")
    if not resume and last.exists():
        raise InputError(f"{out}: holds an unfinished run; continue it with --resume or use another --out")
    if resume:
        _check_resume(cfg, out, last)
    data = SegCLRDataModule(cfg, bank)
    data.setup("fit")  # load and check every input before anything is written
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    _quiet_lightning()
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    note = bf16_cpu_note(cfg.trainer.precision, cfg.trainer.accelerator)
    if note:
        print(note, flush=True)

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = SegCLRModule(cfg.to_dict())
    module.checkpoint_dir = str(ckpt_dir)
    t = cfg.trainer
    bar = t.progress_bar and sys.stderr.isatty()  # a bar in a log file smears; plain lines there
    loggers = [CSVLogger(out, name="logs", version="")]
    if t.tensorboard:
        loggers.append(TensorBoardLogger(out, name="logs", version="tensorboard"))
    val_curve = (ValidationCurve(data.val_volumes, data.prep.pad_multiple, t.val_every_n_steps,
                                 path=out / "val_curve.csv")
                 if t.val_every_n_steps and data.val_volumes else None)
    trainer = L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        logger=loggers,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=[
            ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:06d}", every_n_train_steps=t.checkpoint_every_n_steps,
                            save_last=True, save_top_k=1, auto_insert_metric_name=False),
            _Describe(),
            _StretchSchedule(),
            *([val_curve] if val_curve else []),
            *([TQDMProgressBar(refresh_rate=10)] if bar else [_PlainProgress(progress_every(t.max_steps))]),
        ],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        deterministic=False,
    )
    metrics = out / "logs" / "metrics.csv"
    history = _read_rows(metrics) if resume else []  # Lightning's CSV logger restarts the file
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None, weights_only=True)
    seconds = time.perf_counter() - start
    # fit's teardown moved the module to the CPU: AdaBN and the shift statistics run where training ran
    module.to(trainer.strategy.root_device)
    if trainer.world_size > 1:
        _check_ranks_in_sync(trainer, module, out)
    if cfg.objective.mode == "adabn":
        _adapt_to_targets(module, data)
    bundle = out / "model.safetensors"
    trainer.save_checkpoint(last, weights_only=False)  # collective under DDP: every rank calls it, rank 0 writes
    if trainer.is_global_zero:
        tensors = {**module.net.state_dict(), **_training_shift_statistics(module, data)}
        save_bundle(bundle, tensors, bundle_metadata(cfg, module, seconds, trainer.global_step, data.prep))
        write_model_card(bundle)  # model_card.md/.json next to the bundle
        if history:
            _prepend_history(metrics, history)
        if metrics.is_file():
            plot_training_curves(metrics, out / "training_curves.png",
                                 title=f"{cfg.objective.mode} run ({out.name}), seed {cfg.trainer.seed}")
    return FitResult(out, bundle, seconds, trainer.global_step)


def _check_resume(cfg: RunConfig, out: Path, last: Path) -> None:
    """A resume keeps the run's config (only a longer ``trainer.max_steps``) and has steps left to train."""
    saved = out / "config.yaml"
    if not saved.is_file():
        raise InputError(f"{saved}: missing, so the run's config cannot be checked; start a new run with another --out")
    check_resume_config(load_config(saved, saved_run=True), cfg, saved, explicit=frozenset({"trainer.max_steps"}),
                        predates=missing_keys(saved))
    done = checkpoint_step(last)
    if done >= cfg.trainer.max_steps and (out / "model.safetensors").exists():  # else: finish writing the bundle
        raise InputError(f"{out}: the run already trained its {done} steps "
                         f"(trainer.max_steps={cfg.trainer.max_steps}); "
                         f"to train longer, resume with --set trainer.max_steps=N (N > {done})")
