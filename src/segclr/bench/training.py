"""Training: the supervised and SegCLR UDA steps through Lightning and a plain loop, on the same module and
batches, interleaved over rounds with GEMM samples; FLOPs per step; the worker that also times the data path
and profiles."""

from __future__ import annotations

import time
from typing import Any

import torch

from segclr.bench.common import (MODES, VARIANTS, autocast_ctx, clock, compile_blocks, demo_config, log, median,
                                 periods, quiet, rss_mb, sync, to_device)
from segclr.bench.datapath import data_run
from segclr.bench.gemm import gemm_gflops
from segclr.bench.profile import profile_step
from segclr.inference.allocator import minor_faults


def model_flops(module, batch: dict, device: torch.device) -> float:
    """FLOPs of one forward+backward of ``module.objective.step`` without augmentation."""
    from torch.utils.flop_counter import FlopCounterMode

    def identity(images, masks=None, generator=None):
        return images, masks

    module.to(device).train()
    with FlopCounterMode(display=False) as counter:
        out = module.objective.step(module.net, to_device(batch, device), identity)
        out.loss.backward()
    module.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def fixed_batches(dm, k: int) -> list[dict]:
    it = iter(dm.train_dataloader())
    out = []
    for _ in range(k):
        b = next(it)
        out.append(b[0] if isinstance(b, tuple) else b)
    return out


def lightning_run(module, batches: list[dict], device: torch.device, bf16: bool, warmup: int, n: int) -> dict:
    """Fit ``module`` for warmup + n + 1 steps on ``batches``; periods between batch starts after warm-up."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, IterableDataset

    class Cycle(IterableDataset):
        def __iter__(self):
            i = 0
            while True:
                yield batches[i % len(batches)]
                i += 1

    class Timer(Callback):
        def __init__(self) -> None:
            self.starts: list[tuple[float, float]] = []
            self.ends: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            sync(device)
            self.starts.append(clock())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            sync(device)
            self.ends.append(time.perf_counter())

    timer = Timer()
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        max_steps=warmup + n + 1,
        precision="bf16-mixed" if bf16 else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        deterministic=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=DataLoader(Cycle(), batch_size=None))
    s, e = timer.starts, timer.ends
    return {**periods(s, warmup), "in_hooks": [e[i] - s[i][0] for i in range(warmup, len(s) - 1)]}


def plain_run(module, batches: list[dict], device: torch.device, bf16: bool, warmup: int, n: int) -> dict:
    """The same math without Lightning: objective.step, AdamW, cosine schedule, on the same module."""
    t = module.cfg.trainer
    module.to(device).train()
    opt = torch.optim.AdamW(module.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t.max_steps), eta_min=t.lr * 0.05)
    starts = []
    for i in range(warmup + n + 1):
        sync(device)
        starts.append(clock())
        if i == warmup + n:
            break
        batch = to_device(batches[i % len(batches)], device)
        with autocast_ctx(device, bf16):
            out = module.objective.step(module.net, batch, module.augment)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sched.step()
    return periods(starts, warmup)


def images_per_step(cfg) -> tuple[int, int]:
    """(labeled images, images through the encoder) of one step."""
    b = cfg.data.batch_size
    return b, b + 2 * b * len(cfg.unlabeled_domains)


def worker_train(args) -> dict:
    quiet()
    import lightning as L

    from segclr.data.datamodule import SegCLRDataModule
    from segclr.data.domains import DomainBank
    from segclr.training.module import SegCLRModule

    device = torch.device(args.device)
    res: dict[str, Any] = {"rss_after_import": rss_mb()}
    cfgs = {m: demo_config(m, device.type) for m in MODES}
    stems = sorted({VARIANTS[v].stem for v in args.variants})

    t = time.perf_counter()
    bank = DomainBank(cfgs["segclr_uda"].data.simulation_seed)
    dms = {m: SegCLRDataModule(cfgs[m], bank) for m in MODES}
    for dm in dms.values():
        dm.setup("fit")
    res["data_setup_s"] = time.perf_counter() - t
    uda_batches = fixed_batches(dms["segclr_uda"], 4)
    batches = {"segclr_uda": uda_batches, "supervised": [{"labeled": b["labeled"]} for b in uda_batches]}
    data_iters = {m: iter(dms[m].train_dataloader()) for m in MODES}
    log(f"data ready in {res['data_setup_s']:.1f} s")

    modules: dict[tuple[str, str], Any] = {}
    for v in args.variants:
        var = VARIANTS[v]
        for m in MODES:
            L.seed_everything(0, verbose=False)
            mod = SegCLRModule(demo_config(m, device.type, stem=var.stem).to_dict())
            if var.channels_last:
                mod = mod.to(memory_format=torch.channels_last)
            if var.compile:  # compiled on the first (warm-up) step, which is never timed
                compile_blocks(mod.net)
            modules[(v, m)] = mod

    # FLOPs per step (fp32 count; the same math runs in every variant of one stem).
    by_stem = {}
    for stem in stems:
        by_stem[stem] = {}
        for m in MODES:
            L.seed_everything(0, verbose=False)
            mod = SegCLRModule(demo_config(m, device.type, stem=stem).to_dict())
            by_stem[stem][m] = model_flops(mod, batches[m][0], device)
        log(f"FLOPs per step, {stem} stem: " + ", ".join(f"{m} {f / 1e9:.2f} GFLOP" for m, f in by_stem[stem].items()))
    res["flops_by_variant"] = {v: by_stem[VARIANTS[v].stem] for v in args.variants}
    res["flops_per_step"] = res["flops_by_variant"][args.variants[0]]

    gemm_n = 8192 if device.type == "cuda" else 2048
    with_bf16 = device.type == "cuda" or any(VARIANTS[v].bf16 for v in args.variants)
    gemm = {"fp32": [], **({"bf16": []} if with_bf16 else {})}
    runs: dict[str, list] = {}
    per_round: list[dict] = []
    w, n = args.warmup, args.steps
    for r in range(args.rounds):
        for dt in gemm:
            gemm[dt] += gemm_gflops(device, torch.float32 if dt == "fp32" else torch.bfloat16, gemm_n, args.gemm_reps)
        rnd: dict[str, float] = {}
        modes = MODES if r % 2 == 0 else MODES[::-1]
        for v in args.variants:
            bf16 = VARIANTS[v].bf16
            for m in modes:
                paths = ("lightning", "plain") if r % 2 == 0 else ("plain", "lightning")
                for p in paths:
                    fn = lightning_run if p == "lightning" else plain_run
                    faults = minor_faults()
                    out = fn(modules[(v, m)], batches[m], device, bf16, w, n)
                    out["minflt_per_step"] = (minor_faults() - faults) / (w + n)
                    key = f"{v}/{m}/{p}"
                    runs.setdefault(key, []).append(out)
                    rnd[key] = median(out["periods"])
                    log(f"round {r + 1}/{args.rounds} {key}: {1e3 * rnd[key]:.1f} ms/step, "
                        f"{out['minflt_per_step']:.0f} page faults/step")
        for m in modes:
            mod = modules[(args.variants[0], m)]
            out = data_run(data_iters[m], mod.objective, mod.augment, device, 1, n)
            runs.setdefault(f"data/{m}", []).append(out)
            rnd[f"data/{m}"] = median(out["periods"])
            log(f"round {r + 1}/{args.rounds} data/{m}: {1e3 * rnd[f'data/{m}']:.1f} ms/step")
        per_round.append(rnd)

    res["gemm"] = {dt: {"n": gemm_n, "samples_gflops": s, "best_gflops": max(s), "median_gflops": median(s)}
                   for dt, s in gemm.items()}
    res["runs"] = {k: {"periods_s": [p for o in v for p in o["periods"]],
                       "cpu_periods_s": [p for o in v for p in o["cpu_periods"]],
                       **({"in_hooks_s": [p for o in v for p in o["in_hooks"]]} if "in_hooks" in v[0] else {}),
                       **({"minflt_per_step": [o["minflt_per_step"] for o in v]} if "minflt_per_step" in v[0] else {})}
                   for k, v in runs.items()}
    res["per_round_median_s"] = per_round
    res["images_per_step"] = {m: images_per_step(cfgs[m]) for m in MODES}
    if not args.no_profile:
        log("profiling the SegCLR UDA and the supervised step")
        res["profile"] = {m: profile_step(modules[(args.variants[0], m)], batches[m], device, args.profile_steps)
                          for m in MODES[::-1]}
    res["rss_end"] = rss_mb()
    if device.type == "cuda":
        res["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return res
