"""Speed of segclr on one machine: GEMM limit, training, data path, inference, memory.

Usage::

    python benchmarks/bench_train.py [--device cpu|cuda] [--out DIR] [--steps N] [--quick]
                                     [--rounds R] [--threads T] [--variants fp32,bf16,fp32-cl,bf16-cl]
                                     [--no-sweep] [--no-profile]

Everything runs on the default config's shapes (the demo config: batch 8, crop 128, UNet base 8,
depth 4; SegCLR UDA with the Cch head, Pa pairs, unlabeled spectralis + cirrus_like) and, in one run:

1. **GEMM limit**: fp32 (and bf16 on CUDA, or when a bf16 variant runs) throughput of a large square
   matmul, GFLOP/s (best of all samples; samples are taken before every round, so the limit sees the
   same machine state as the training rows).
2. **Training**: the supervised step and the SegCLR UDA step, each (a) through segclr's real path,
   ``SegCLRModule`` driven by a ``lightning.Trainer`` (no logger, checkpoint or progress bar; steps
   timed by a Callback between consecutive ``on_train_batch_start`` calls, after warm-up) and (b) a
   plain PyTorch loop on the *same module object* (``objective.step`` + AdamW + cosine schedule,
   zero_grad/backward/step). Both consume the same fixed in-memory batches drawn once from the real
   datamodule. Rounds interleave the paths (and alternate their order), so machine noise hits both.
   Model FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` over one forward+backward of the
   step with augmentation switched off (UNet + head + the NT-Xent matmul).
3. **Data path**: the datamodule's streams through ``CombinedLoader`` + DataLoader collation plus the
   ``BatchAugment`` calls one step makes (labeled batch, and both views of every domain for Pa).
4. **Inference**: a model bundle saved with ``save_bundle`` + ``bundle_metadata``, loaded by ``Predictor``,
   on 49- and 128-slice volumes of 496x512 B-scans (Spectralis' default) through the volume path of
   ``segclr predict`` (``segclr.inference.volumes.segment_volume``, 8 B-scans per batch), and 49
   B-scans one per ``Predictor.__call__`` (folder prediction, evaluation). Also timed, for comparison
   only: the UNet forward and the final argmax of one batch, the volume path with
   ``torch.max(probs, 1).indices`` in place of ``argmax(1)``, and the volume path under every other
   variant (bf16 autocast / channels_last weights).
5. **Peak resident memory** (``ru_maxrss``; on Linux also the split between rendering the domains and
   ``fit`` itself, via /proc/self/clear_refs) of training (a real ``segclr.training.trainer.fit`` of the
   demo's SegCLR UDA config, shortened) and of inference, each in a fresh subprocess.

On CPU a sweep also times the plain-loop steps at 1, 2, 4, ... N torch threads, with the default OpenMP wait
policy and with ``OMP_WAIT_POLICY=PASSIVE`` (read at start-up, hence a subprocess each).

Variants (``--variants``): ``fp32``; ``bf16`` = bf16 autocast (Lightning ``precision="bf16-mixed"``, the
plain loop ``torch.autocast(device, torch.bfloat16)``); ``-cl`` = module converted with
``.to(memory_format=torch.channels_last)`` (convolutions then run NHWC; inputs stay as produced).
Default: ``fp32`` on CPU, all four on CUDA. The target verdicts use the first variant listed.
Every worker runs in its own interpreter; ``--threads`` applies to all of them except the sweep.

Writes ``bench.json`` and ``bench.md`` into ``--out`` (default ``benchmarks/out/``) and prints both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
MODES = ("supervised", "segclr_uda")
VARIANTS = {  # name -> (bf16 autocast, channels_last)
    "fp32": (False, False),
    "bf16": (True, False),
    "fp32-cl": (False, True),
    "bf16-cl": (True, True),
}
TARGETS = {
    "overhead_ratio_min": 0.95,
    "gemm_fraction_min": 0.50,
    "data_multiple_min": 5.0,
    "segclr_over_sup_max": 2.5,
    "volume49_s_max": 2.0,
    "train_peak_gb_max": 4.0,
}


# ============================================================================ small helpers
def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds. On a shared machine the CPU time of a 1-thread run is the steadier one."""
    return time.perf_counter(), time.process_time()


def periods(stamps: list[tuple[float, float]], first: int) -> dict[str, list[float]]:
    """Wall and CPU durations between consecutive stamps, from stamp ``first`` on."""
    return {
        "periods": [stamps[i + 1][0] - stamps[i][0] for i in range(first, len(stamps) - 1)],
        "cpu_periods": [stamps[i + 1][1] - stamps[i][1] for i in range(first, len(stamps) - 1)],
    }


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def rss_mb() -> dict[str, float]:
    """This process's resident set size, MB: ``peak_mb`` (ru_maxrss), and on Linux ``rss_mb`` (now) and
    ``hwm_mb`` (peak since start or since the last :func:`reset_peak`)."""
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        peak_kb /= 1024  # bytes there
    out = {"peak_mb": peak_kb / 1024}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                out["hwm_mb"] = int(line.split()[1]) / 1024
    return out


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def quiet() -> None:
    import logging

    from segclr.training.trainer import _quiet_lightning

    _quiet_lightning()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning.*")


def demo_config(mode: str, device: str, max_steps: int | None = None):
    """The demo's RunConfig for ``mode`` (its shapes are the default config's)."""
    from segclr.experiment.demo import demo_configs

    cfg = demo_configs(seed=0, steps=max_steps)[mode]
    cfg.trainer.accelerator = device
    cfg.trainer.progress_bar = False
    return cfg


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def autocast_ctx(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


# ============================================================================ GEMM limit
def gemm_gflops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> list[float]:
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    a @ b  # warm-up (library init, clocks)
    sync(device)
    out = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        out.append(2.0 * n**3 / (time.perf_counter() - t) / 1e9)
    return out


# ============================================================================ training
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


def data_run(it, objective, augment, device: torch.device, warmup: int, n: int) -> dict:
    """One training step's worth of data: next() on the CombinedLoader + every BatchAugment call."""
    from segclr.objectives.base import augment_labeled

    starts = []
    for i in range(warmup + n + 1):
        sync(device)
        starts.append(clock())
        if i == warmup + n:
            break
        b = next(it)
        b = to_device(b[0] if isinstance(b, tuple) else b, device)
        with torch.no_grad():
            augment_labeled(augment, b["labeled"])
            for d in getattr(objective, "domains", []):
                v1, v2 = b[d]["view1"], b[d]["view2"]
                if objective.augment_pairs:
                    augment(v1)
                    augment(v2)
    return periods(starts, warmup)


def images_per_step(cfg) -> tuple[int, int]:
    """(labeled images, images through the encoder) of one step."""
    b = cfg.data.batch_size
    return b, b + 2 * b * len(cfg.unlabeled_domains)


def profile_step(module, batches, device: torch.device, steps: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.to(device).train()

    def step(i):
        out = module.objective.step(module.net, to_device(batches[i % len(batches)], device), module.augment)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    step(0)
    sync(device)
    with profile(activities=acts, record_shapes=True, with_flops=True) as prof:
        for i in range(steps):
            step(i)
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = list(prof.key_averages())
    total = sum(getattr(e, key) for e in events)
    events.sort(key=lambda e: -getattr(e, key))
    top = [
        {
            "op": e.key,
            "calls_per_step": e.count / steps,
            "self_ms_per_step": getattr(e, key) / 1e3 / steps,
            "self_pct": 100.0 * getattr(e, key) / total if total else float("nan"),
        }
        for e in events[:10]
    ]

    def ms(pred: Callable[[str], bool]) -> float:
        return sum(getattr(e, key) for e in events if pred(e.key)) / 1e3 / steps

    groups = {name: ms(pred) for name, pred in OP_GROUPS.items()}
    groups["other"] = total / 1e3 / steps - sum(groups.values())

    # Convolutions by the spatial size of their input: forward FLOPs (profiler estimate) and time, backward time.
    tkey = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    by_res: dict[str, dict[str, float]] = {}
    for e in prof.key_averages(group_by_input_shape=True):
        shapes = e.input_shapes or []
        if e.key in ("aten::conv2d", "aten::conv_transpose2d") and shapes and len(shapes[0]) == 4:
            d = by_res.setdefault(f"{shapes[0][-2]}x{shapes[0][-1]}", {"fwd_gflop": 0.0, "fwd_ms": 0.0, "bwd_ms": 0.0})
            d["fwd_gflop"] += e.flops / 1e9 / steps
            d["fwd_ms"] += getattr(e, tkey) / 1e3 / steps
        elif e.key == "aten::convolution_backward" and len(shapes) > 1 and len(shapes[1]) == 4:
            d = by_res.setdefault(f"{shapes[1][-2]}x{shapes[1][-1]}", {"fwd_gflop": 0.0, "fwd_ms": 0.0, "bwd_ms": 0.0})
            d["bwd_ms"] += getattr(e, tkey) / 1e3 / steps
    return {
        "steps": steps,
        "sort_key": key,
        "total_self_ms_per_step": total / 1e3 / steps,
        "top10": top,
        "table": prof.key_averages().table(sort_by=key, row_limit=10),
        "groups_ms_per_step": groups,
        "conv_by_input_size": dict(sorted(by_res.items(), key=lambda kv: -math.prod(map(int, kv[0].split("x"))))),
    }


# Op families of the profile (self time), matched on the aten op name.
OP_GROUPS: dict[str, Callable[[str], bool]] = {
    "convolution forward": lambda k: "conv" in k and "backward" not in k,
    "convolution backward": lambda k: "conv" in k and "backward" in k,
    "batch norm (fwd+bwd)": lambda k: "batch_norm" in k,
    "max pool (fwd+bwd)": lambda k: "max_pool" in k,
    "ReLU (fwd+bwd)": lambda k: "clamp_min" in k or "relu" in k or "threshold" in k,
    "augmentation sampling (gamma, normal, grid_sample)": lambda k: any(
        t in k for t in ("_standard_gamma", "normal_", "grid_sampler")),
}


def worker_train(args) -> dict:
    quiet()
    import lightning as L

    from segclr.data.datamodule import SegCLRDataModule
    from segclr.data.domains import DomainBank
    from segclr.training.module import SegCLRModule

    device = torch.device(args.device)
    res: dict[str, Any] = {"rss_after_import": rss_mb()}
    cfgs = {m: demo_config(m, device.type) for m in MODES}

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
        bf16, cl = VARIANTS[v]
        for m in MODES:
            L.seed_everything(0, verbose=False)
            mod = SegCLRModule(cfgs[m].to_dict())
            if cl:
                mod = mod.to(memory_format=torch.channels_last)
            modules[(v, m)] = mod

    # FLOPs per step (fp32 count; the same math runs in every variant).
    flops = {}
    for m in MODES:
        L.seed_everything(0, verbose=False)
        flops[m] = model_flops(SegCLRModule(cfgs[m].to_dict()), batches[m][0], device)
    res["flops_per_step"] = flops
    log("FLOPs per step: " + ", ".join(f"{m} {f / 1e9:.2f} GFLOP" for m, f in flops.items()))

    gemm_n = 8192 if device.type == "cuda" else 2048
    with_bf16 = device.type == "cuda" or any(VARIANTS[v][0] for v in args.variants)
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
            bf16, _ = VARIANTS[v]
            for m in modes:
                paths = ("lightning", "plain") if r % 2 == 0 else ("plain", "lightning")
                for p in paths:
                    fn = lightning_run if p == "lightning" else plain_run
                    out = fn(modules[(v, m)], batches[m], device, bf16, w, n)
                    key = f"{v}/{m}/{p}"
                    runs.setdefault(key, []).append(out)
                    rnd[key] = median(out["periods"])
                    log(f"round {r + 1}/{args.rounds} {key}: {1e3 * rnd[key]:.1f} ms/step")
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
                       **({"in_hooks_s": [p for o in v for p in o["in_hooks"]]} if "in_hooks" in v[0] else {})}
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


# ============================================================================ inference
def worker_infer(args) -> dict:
    quiet()
    import numpy as np

    from segclr.inference.predict import Predictor
    from segclr.io.bundle import save_bundle
    from segclr.training.module import SegCLRModule
    from segclr.training.trainer import bundle_metadata

    try:  # the volume path of `segclr predict` (batched B-scans); older trees only had the per-B-scan call
        from segclr.inference.volumes import segment_volume
    except ImportError:
        segment_volume = None

    device = torch.device(args.device)
    res: dict[str, Any] = {"rss_after_import": rss_mb()}
    cfg = demo_config("segclr_uda", device.type)
    torch.manual_seed(0)
    module = SegCLRModule(cfg.to_dict())
    rng = np.random.default_rng(0)
    h, w = 496, 512
    volume = rng.random((128, h, w), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "model.safetensors"
        save_bundle(bundle, module.net.state_dict(), bundle_metadata(cfg, module, 0.0, 0))
        del module
        predictor = Predictor(bundle, device)
    work = predictor.prep.working_size(h, w)
    pm = predictor.prep.pad_multiple
    padded = (math.ceil(work[0] / pm) * pm, math.ceil(work[1] / pm) * pm)
    res.update({"bscan_hw": [h, w], "working_hw": list(work), "padded_hw": list(padded)})

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        predictor.net(torch.zeros(1, 1, *padded, device=device))
    res["flops_per_bscan"] = float(counter.get_total_flops())

    batch = 8  # segment_volume's default

    def shipped_volume(vol):
        if segment_volume is not None:
            return segment_volume(predictor, vol, batch_size=batch)
        return np.stack([predictor(img) for img in vol])

    def per_bscan(vol):
        return np.stack([predictor(img) for img in vol])

    def volume_torch_max(vol):
        """The volume path with ``torch.max(probs, 1).indices`` in place of ``argmax(1)`` (not shipped)."""
        out = np.empty(vol.shape, dtype=np.uint8)
        for s0 in range(0, len(vol), batch):
            probs = predictor.probabilities_batch(vol[s0:s0 + batch])
            out[s0:s0 + batch] = torch.max(probs, 1).indices.numpy()
        return out

    res["volume_path"] = (f"segclr.inference.volumes.segment_volume(batch_size={batch})" if segment_volume
                          else "Predictor per B-scan")
    paths = {"volume49": (shipped_volume, 49), "volume128": (shipped_volume, 128),
             "bscan49": (per_bscan, 49)}
    if hasattr(predictor, "probabilities_batch"):
        paths["volume49_torch_max"] = (volume_torch_max, 49)
    assert np.array_equal(shipped_volume(volume[:9]), per_bscan(volume[:9]))  # same masks; also warm-up
    if "volume49_torch_max" in paths:
        assert np.array_equal(volume_torch_max(volume[:9]), per_bscan(volume[:9]))
    times: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(args.infer_reps):
        for k in list(paths) if r % 2 == 0 else list(paths)[::-1]:
            fn, n = paths[k]
            sync(device)
            t = time.perf_counter()
            fn(volume[:n])
            sync(device)
            times[k].append(time.perf_counter() - t)
        log(f"inference rep {r + 1}/{args.infer_reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    res["times_s"] = times
    res["rss_predictor"] = rss_mb()

    # Where a batch's time goes: the UNet forward alone, and the final argmax over classes.
    def per_call_ms(fn, n: int = 5) -> float:
        fn()
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            fn()
        sync(device)
        return 1e3 * (time.perf_counter() - t) / n

    x_pad = torch.rand(batch, 1, *padded, device=device)
    if hasattr(predictor, "probabilities_batch"):
        probs = predictor.probabilities_batch(volume[:batch])
    else:
        probs = torch.stack([predictor.probabilities(img) for img in volume[:batch]])
    with torch.inference_mode():
        res["per_batch_ms"] = {
            f"volume path, {batch} B-scans (shipped)": per_call_ms(lambda: shipped_volume(volume[:batch])),
            f"UNet forward, {batch} x 1 x {padded[0]} x {padded[1]}": per_call_ms(lambda: predictor.net(x_pad)),
            f"probs.argmax(1) on {tuple(probs.shape)} (shipped)": per_call_ms(lambda: probs.argmax(1)),
            f"torch.max(probs, 1).indices on {tuple(probs.shape)}": per_call_ms(lambda: torch.max(probs, 1).indices),
        }

    # The shipped volume path under the other variants (bf16 autocast / channels_last weights).
    others = [v for v in args.variants if v != "fp32"]
    by_variant: dict[str, list[float]] = {v: [] for v in others}
    for r in range(args.infer_reps if others else 0):
        for v in others if r % 2 == 0 else others[::-1]:
            bf16, cl = VARIANTS[v]
            predictor.net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            with autocast_ctx(device, bf16):
                shipped_volume(volume[:batch])
                sync(device)
                t = time.perf_counter()
                shipped_volume(volume[:49])
                sync(device)
                by_variant[v].append(time.perf_counter() - t)
            log(f"inference rep {r + 1}/{args.infer_reps} {v}: 49 slices {by_variant[v][-1]:.2f} s")
    predictor.net.to(memory_format=torch.contiguous_format)
    res["volume49_s_by_variant"] = by_variant
    res["rss_end"] = rss_mb()
    if device.type == "cuda":
        res["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return res


# ============================================================================ training memory
def worker_memtrain(args) -> dict:
    """A real ``fit`` of the demo's SegCLR UDA config (shortened): peak RSS of training."""
    quiet()
    from segclr.data.domains import DomainBank
    from segclr.training.trainer import fit

    res: dict[str, Any] = {"rss_after_import": rss_mb()}
    steps = args.mem_steps
    cfg = demo_config("segclr_uda", args.device, steps)
    cfg.trainer.checkpoint_every_n_steps = max(1, steps // 2)
    # Render the domains first (what fit's datamodule would do) to split data setup from training.
    bank = DomainBank(cfg.data.simulation_seed)
    bank.volumes(cfg.labeled_domain, "source_train")
    for d in cfg.unlabeled_domains:
        bank.volumes(d, "source_train" if d == cfg.data.source_domain else "target_train")
    res["rss_after_data"] = rss_mb()
    res["peak_reset"] = reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = fit(cfg, Path(tmp) / "run", bank=bank)
        res["fit_s"] = time.perf_counter() - t
        res["steps"] = out.steps
    res["rss_end"] = rss_mb()
    if args.device == "cuda":
        res["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return res


# ============================================================================ threads sweep (CPU)
def worker_threads(args) -> dict:
    """Plain-loop steps at 1, 2, 4, ... N threads on synthetic batches of the benchmark's shapes (CPU)."""
    quiet()
    import lightning as L

    from segclr.training.module import SegCLRModule

    device = torch.device("cpu")
    cfgs = {m: demo_config(m, "cpu") for m in MODES}
    g = torch.Generator().manual_seed(0)
    bs, c = cfgs["segclr_uda"].data.batch_size, cfgs["segclr_uda"].data.crop_size

    def img():
        return torch.rand(bs, 1, c, c, generator=g)

    uda = {"labeled": {"image": img(), "mask": torch.randint(0, 2, (bs, c, c), generator=g)}}
    for k, d in enumerate(cfgs["segclr_uda"].unlabeled_domains):
        uda[d] = {"view1": img(), "view2": img(), "group": torch.arange(bs) % 3 + k}
    batches = {"segclr_uda": [uda], "supervised": [{"labeled": uda["labeled"]}]}
    modules = {}
    for m in MODES:
        L.seed_everything(0, verbose=False)
        modules[m] = SegCLRModule(cfgs[m].to_dict())
    n_cpu = os.cpu_count() or 1
    threads = sorted({1, n_cpu} | {2**k for k in range(1, n_cpu.bit_length()) if 2**k < n_cpu})
    times: dict[str, list[float]] = {}
    gemm: dict[str, list[float]] = {}
    for r in range(args.sweep_rounds):
        for th in threads if r % 2 == 0 else threads[::-1]:
            torch.set_num_threads(th)
            gemm.setdefault(str(th), []).extend(gemm_gflops(device, torch.float32, 2048, 2))
            for m in MODES:
                out = plain_run(modules[m], batches[m], device, False, 1, args.sweep_steps)
                times.setdefault(f"{th}/{m}", []).extend(out["periods"])
                log(f"sweep OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')} threads {th} {m}: "
                    f"{1e3 * median(out['periods']):.1f} ms/step")
    return {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"), "step_s": times,
            "gemm_gflops": gemm}


# ============================================================================ driver
WORKERS = {"train": worker_train, "infer": worker_infer, "memtrain": worker_memtrain, "threads": worker_threads}


def cpu_busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat (Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def run_worker(name: str, args, set_env: dict | None = None, unset_env: tuple[str, ...] = ()) -> dict:
    """Run one worker in a fresh interpreter (clean peak memory, OpenMP settings read at start-up)."""
    env = {k: v for k, v in os.environ.items() if k not in unset_env}
    env.update(set_env or {})
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", name, "--_result", str(result),
               *args.forward]
        t, jiff0, self0 = time.perf_counter(), cpu_busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark worker '{name}' failed with exit code {proc.returncode}")
        out = json.loads(result.read_text())
        out["wall_s"] = time.perf_counter() - t
        out["others_cores"] = others_cores(jiff0, cpu_busy_jiffies(), self0, out["wall_s"])
        return out


def others_cores(jiff0, jiff1, self0, wall: float) -> float:
    """Average number of cores other processes kept busy since (jiff0, self0); NaN off Linux."""
    if not (jiff0 and jiff1) or wall <= 0:
        return float("nan")
    busy = (jiff1[0] - jiff0[0]) / os.sysconf("SC_CLK_TCK")
    self1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    return max(0.0, busy - mine) / wall


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_details() -> dict:
    """Linux /proc/cpuinfo: cores vs. logical CPUs per package, and the SIMD/matrix flags that matter here."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu cores", "siblings") and key not in out:
                out[key] = int(value)
            elif key == "flags" and "flags" not in out:
                have = set(value.split())
                out["flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have]
    info = torch.__config__.parallel_info().splitlines()
    out["parallel_backend"] = next((x.split(":", 1)[1].strip() for x in info if "parallel backend" in x), None)
    config = torch.__config__.show().splitlines()
    out["onednn"] = next((x.strip().lstrip("- ") for x in config if "oneDNN" in x or "MKL-DNN" in x), None)
    return out


def machine_info(args) -> dict:
    import lightning

    info = {
        "device": args.device,
        "cpu": cpu_name(),
        "cpu_details": cpu_details(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": args.threads or torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")},
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


def summarize(args, machine: dict, train: dict, infer: dict, mem: dict, sweep: list[dict], load: dict) -> dict:
    runs = train["runs"]
    rows = []
    step, step_min, step_cpu = {}, {}, {}
    for key, r in runs.items():
        if key.startswith("data/"):
            continue
        v, m, p = key.split("/")
        t = median(r["periods_s"])
        step[key], step_min[key], step_cpu[key] = t, min(r["periods_s"]), median(r["cpu_periods_s"])
        lab, enc = train["images_per_step"][m]
        gf = train["flops_per_step"][m] / t / 1e9
        limit = train["gemm"]["bf16" if VARIANTS[v][0] and "bf16" in train["gemm"] else "fp32"]["best_gflops"]
        rows.append({
            "variant": v, "mode": m, "path": p, "step_ms": 1e3 * t,
            "step_ms_min": 1e3 * step_min[key], "cpu_ms": 1e3 * step_cpu[key], "steps_timed": len(r["periods_s"]),
            "labeled_images_per_s": lab / t, "encoded_images_per_s": enc / t,
            "gflop_per_step": train["flops_per_step"][m] / 1e9, "model_gflops": gf, "gemm_fraction": gf / limit,
            "model_gflops_per_cpu_s": train["flops_per_step"][m] / step_cpu[key] / 1e9,
            **({"in_hooks_ms": 1e3 * median(r["in_hooks_s"]),
                # Lightning's loop between on_train_batch_end and the next on_train_batch_start.
                "outside_hooks_ms": 1e3 * median([a - b for a, b in zip(r["periods_s"], r["in_hooks_s"])])}
               if "in_hooks_s" in r else {}),
        })
    v0 = args.variants[0]
    overhead = {}
    for v in args.variants:
        for m in MODES:
            a, b = step[f"{v}/{m}/lightning"], step[f"{v}/{m}/plain"]
            per_round = [rd[f"{v}/{m}/plain"] / rd[f"{v}/{m}/lightning"] for rd in train["per_round_median_s"]]
            k = (f"{v}/{m}/lightning", f"{v}/{m}/plain")
            outside = next(r.get("outside_hooks_ms") for r in rows
                           if (r["variant"], r["mode"], r["path"]) == (v, m, "lightning"))
            overhead[f"{v}/{m}"] = {"ratio": b / a, "per_round": per_round, "extra_ms": 1e3 * (a - b),
                                    "outside_hooks_ms": outside,
                                    "ratio_min": step_min[k[1]] / step_min[k[0]],
                                    "ratio_cpu": step_cpu[k[1]] / step_cpu[k[0]]}
    data = {}
    for m in MODES:
        t = median(runs[f"data/{m}"]["periods_s"])
        lab, enc = train["images_per_step"][m]
        data[m] = {"step_ms": 1e3 * t, "cpu_ms": 1e3 * median(runs[f"data/{m}"]["cpu_periods_s"]),
                   "images_per_s": enc / t,
                   "multiple_of_training": step[f"{v0}/{m}/lightning"] / t,
                   "per_round": [rd[f"{v0}/{m}/lightning"] / rd[f"data/{m}"] for rd in train["per_round_median_s"]]}
    seg_over_sup = {}
    for v in args.variants:
        for p in ("lightning", "plain"):
            seg_over_sup[f"{v}/{p}"] = {
                "ratio": step[f"{v}/segclr_uda/{p}"] / step[f"{v}/supervised/{p}"],
                "ratio_min": step_min[f"{v}/segclr_uda/{p}"] / step_min[f"{v}/supervised/{p}"],
                "ratio_cpu": step_cpu[f"{v}/segclr_uda/{p}"] / step_cpu[f"{v}/supervised/{p}"],
                "per_round": [rd[f"{v}/segclr_uda/{p}"] / rd[f"{v}/supervised/{p}"]
                              for rd in train["per_round_median_s"]],
            }
    flop_ratio = train["flops_per_step"]["segclr_uda"] / train["flops_per_step"]["supervised"]
    it = {k: median(v) for k, v in infer["times_s"].items()}
    t49, t128 = it["volume49"], it["volume128"]
    inference = {
        "bscan_hw": infer["bscan_hw"], "padded_hw": infer["padded_hw"], "volume_path": infer["volume_path"],
        "volume49_s": t49, "volume128_s": t128, "bscans_per_s": 128 / t128,
        "bscan49_s": it["bscan49"], "volume49_torch_max_s": it.get("volume49_torch_max"),
        "gflop_per_bscan": infer["flops_per_bscan"] / 1e9,
        "model_gflops": infer["flops_per_bscan"] * 128 / t128 / 1e9,
        "per_batch_ms": infer["per_batch_ms"],
        "volume49_s_by_variant": {v: median(ts) for v, ts in infer["volume49_s_by_variant"].items()},
        "samples": infer["times_s"],
    }
    after_data = mem["rss_after_data"]
    fit_peak = mem["rss_end"].get("hwm_mb") if mem["peak_reset"] else None
    memory = {
        "train_peak_mb": max(after_data.get("hwm_mb", after_data["peak_mb"]), fit_peak or mem["rss_end"]["peak_mb"]),
        "train_data_setup_peak_mb": after_data.get("hwm_mb", after_data["peak_mb"]),
        "train_after_data_mb": after_data.get("rss_mb"),
        "train_fit_peak_mb": fit_peak,
        "train_after_import_mb": mem["rss_after_import"]["rss_mb"],
        "train_fit_steps": mem["steps"], "train_fit_s": mem["fit_s"],
        "infer_peak_mb": infer["rss_predictor"]["peak_mb"],
        "infer_after_import_mb": infer["rss_after_import"]["rss_mb"],
        "infer_peak_with_variants_mb": infer["rss_end"]["peak_mb"],
        "bench_train_process_peak_mb": train["rss_end"]["peak_mb"],
        **({"train_cuda_max_allocated_mb": mem["cuda_max_allocated_mb"]} if "cuda_max_allocated_mb" in mem else {}),
        **({"infer_cuda_max_allocated_mb": infer["cuda_max_allocated_mb"]} if "cuda_max_allocated_mb" in infer else {}),
        **({"bench_train_cuda_max_allocated_mb": train["cuda_max_allocated_mb"]}
           if "cuda_max_allocated_mb" in train else {}),
    }
    sweep_out = []
    for s in sweep:
        entry = {"omp_wait_policy": s["omp_wait_policy"], "rows": []}
        for key, ts in s["step_s"].items():
            th, m = key.split("/")
            t = median(ts)
            gl = max(s["gemm_gflops"][th])
            entry["rows"].append({"threads": int(th), "mode": m, "step_ms": 1e3 * t,
                                  "model_gflops": train["flops_per_step"][m] / t / 1e9, "gemm_gflops": gl,
                                  "gemm_fraction": train["flops_per_step"][m] / t / 1e9 / gl})
        sweep_out.append(entry)

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    ov = [overhead[f"{v0}/{m}"]["ratio"] for m in MODES]
    ov_cpu = [overhead[f"{v0}/{m}"]["ratio_cpu"] for m in MODES]
    so_cpu = seg_over_sup[f"{v0}/lightning"]["ratio_cpu"]
    lrows = [r for r in rows if r["variant"] == v0 and r["path"] == "lightning"]
    gf = [r["gemm_fraction"] for r in lrows]
    # Per CPU-second against the GEMM limit per thread (the limit was measured with all threads busy).
    threads = machine["torch_threads"]
    gf_cpu = [r["model_gflops_per_cpu_s"] / (r["model_gflops"] / r["gemm_fraction"] / threads) for r in lrows]
    dm = [data[m]["multiple_of_training"] for m in MODES]
    so = seg_over_sup[f"{v0}/lightning"]["ratio"]
    peak_gb = memory["train_peak_mb"] / 1024
    targets = [
        {"target": "framework overhead: Lightning/plain throughput >= 0.95",
         "measured": ", ".join(f"{m} {x:.3f}" for m, x in zip(MODES, ov)),
         "measured_cpu": ", ".join(f"{m} {x:.3f}" for m, x in zip(MODES, ov_cpu)),
         "verdict_cpu": verdict(min(ov_cpu) >= TARGETS["overhead_ratio_min"]),
         "verdict": verdict(min(ov) >= TARGETS["overhead_ratio_min"]), "worst": min(ov),
         "margin": f"{min(ov) - TARGETS['overhead_ratio_min']:+.3f}"},
        {"target": "training model FLOP/s >= 50 % of the fp32 GEMM limit",
         "measured": ", ".join(f"{r['mode']} {100 * x:.1f} %" for r, x in zip(lrows, gf)),
         "measured_cpu": ", ".join(f"{r['mode']} {100 * x:.1f} %" for r, x in zip(lrows, gf_cpu)),
         "verdict_cpu": verdict(min(gf_cpu) >= TARGETS["gemm_fraction_min"]),
         "verdict": verdict(min(gf) >= TARGETS["gemm_fraction_min"]), "worst": min(gf),
         "margin": f"{TARGETS['gemm_fraction_min'] / min(gf):.1f}x short" if min(gf) < TARGETS["gemm_fraction_min"]
         else f"{min(gf) / TARGETS['gemm_fraction_min']:.2f}x the target"},
        {"target": "data path >= 5x training throughput",
         "measured": ", ".join(f"{m} {x:.1f}x" for m, x in zip(MODES, dm)),
         "verdict": verdict(min(dm) >= TARGETS["data_multiple_min"]), "worst": min(dm),
         "margin": f"{min(dm) / TARGETS['data_multiple_min']:.2f}x the target"},
        {"target": "SegCLR UDA step <= 2.5x the supervised step",
         "measured": f"{so:.2f}x (model FLOP ratio {flop_ratio:.2f}x)",
         "measured_cpu": f"{so_cpu:.2f}x", "verdict_cpu": verdict(so_cpu <= TARGETS["segclr_over_sup_max"]),
         "verdict": verdict(so <= TARGETS["segclr_over_sup_max"]), "worst": so,
         "margin": f"{so - TARGETS['segclr_over_sup_max']:+.2f}x"},
        {"target": "49-slice volume inference < 2 s",
         "measured": f"{t49:.2f} s" + (f" (not shipped: {inference['volume49_torch_max_s']:.2f} s with "
                                      "torch.max in place of argmax)" if inference["volume49_torch_max_s"] else ""),
         "verdict": verdict(t49 < TARGETS["volume49_s_max"]), "worst": t49,
         "margin": f"{t49 - TARGETS['volume49_s_max']:+.2f} s"},
        {"target": "peak training memory < 4 GB (demo config, real fit)",
         "measured": f"{peak_gb:.2f} GB", "verdict": verdict(peak_gb < TARGETS["train_peak_gb_max"]),
         "worst": peak_gb, "margin": f"{peak_gb - TARGETS['train_peak_gb_max']:+.2f} GB"},
    ]
    return {
        "command": "python benchmarks/bench_train.py " + " ".join(args.cli),
        "machine": machine,
        "load": load,
        "settings": {"rounds": args.rounds, "warmup_steps": args.warmup, "timed_steps_per_run": args.steps,
                     "variants": args.variants, "quick": args.quick,
                     "shapes": "batch 8, crop 128, UNet base 8 depth 4, Cch head, Pa pairs, "
                               "unlabeled spectralis + cirrus_like"},
        "gemm": train["gemm"],
        "flops_per_step": train["flops_per_step"],
        "images_per_step": {m: {"labeled": a, "encoded": b} for m, (a, b) in train["images_per_step"].items()},
        "training": rows,
        "framework_overhead": overhead,
        "data_path": data,
        "segclr_over_supervised": {**seg_over_sup, "flop_ratio": flop_ratio},
        "inference": inference,
        "memory": memory,
        "threads_sweep": sweep_out,
        "profile": train.get("profile"),
        "targets": targets,
        "data_setup_s": train["data_setup_s"],
        "worker_wall_s": {"train": train["wall_s"], "infer": infer["wall_s"], "memtrain": mem["wall_s"],
                          **{f"threads_{s_['omp_wait_policy']}": s_["wall_s"] for s_ in sweep}},
        "worker_others_cores": {"train": train["others_cores"], "infer": infer["others_cores"],
                                "memtrain": mem["others_cores"],
                                **{f"threads_{s_['omp_wait_policy']}": s_["others_cores"] for s_ in sweep}},
        "raw": {"train_runs": train["runs"], "per_round_median_s": train["per_round_median_s"]},
    }


def render_md(s: dict) -> str:
    m = s["machine"]
    L = []
    L.append(f"# segclr benchmark ({m['device']})\n")
    L.append(f"`{s['command']}`\n")
    dev = m.get("gpu", m["cpu"])
    cd = m.get("cpu_details", {})
    L.append(f"Machine: {dev}; {m['logical_cpus']} logical CPUs ({cd.get('cpu cores', '?')} cores, "
             f"{cd.get('siblings', '?')} logical per package; flags {', '.join(cd.get('flags', [])) or '?'}); "
             f"torch {m['torch']} ({m['torch_threads']} threads, {cd.get('parallel_backend')}, {cd.get('onednn')}), "
             f"Lightning {m['lightning']}, Python {m['python']}; OMP_WAIT_POLICY={m['env']['OMP_WAIT_POLICY']}.")
    ld = s["load"]
    L.append(f"Load average before/after: {ld['loadavg_start'][0]:.2f} / {ld['loadavg_end'][0]:.2f}; "
             f"CPU used by other processes during the run: {ld['others_cores']:.2f} cores on average "
             f"(machine busy {ld['machine_busy_cores']:.2f} cores, this benchmark {ld['self_cores']:.2f}).")
    ww = s["worker_wall_s"]
    L.append(f"Run wall time {ld['wall_s']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in ww.items()) + "); "
             "cores used by other processes during each part: " + ", ".join(
                 f"{k} {v:.2f}" for k, v in s["worker_others_cores"].items()) + ".")
    st = s["settings"]
    L.append(f"Shapes: {st['shapes']}. {st['rounds']} rounds x {st['timed_steps_per_run']} timed steps per path "
             f"after {st['warmup_steps']} warm-up; medians.\n")
    L.append("## GEMM limit\n")
    L.append("| dtype | n | best GFLOP/s | median GFLOP/s |\n|---|---|---|---|")
    for dt, g in s["gemm"].items():
        L.append(f"| {dt} | {g['n']} | {g['best_gflops']:.1f} | {g['median_gflops']:.1f} |")
    L.append("\n## Training step\n")
    fl = s["flops_per_step"]
    ips = s["images_per_step"]
    L.append("Model FLOPs per step (forward+backward, FlopCounterMode): " + ", ".join(
        f"{k} {v / 1e9:.2f} GFLOP ({ips[k]['labeled']} labeled, {ips[k]['encoded']} encoded images)"
        for k, v in fl.items()) + ".\n")
    L.append("Wall ms/step is the median (min) over all timed steps; CPU ms is the process CPU time per step "
             "(all threads, spin-waiting included). Throughput and GFLOP/s use the median wall time.\n")
    L.append("| variant | mode | path | wall ms/step median (min) | CPU ms/step | labeled img/s | encoded img/s "
             "| model GFLOP/s | % of GEMM limit | GFLOP per CPU-s |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in s["training"]:
        L.append(f"| {r['variant']} | {r['mode']} | {r['path']} | {r['step_ms']:.1f} ({r['step_ms_min']:.1f}) | "
                 f"{r['cpu_ms']:.1f} | {r['labeled_images_per_s']:.2f} | {r['encoded_images_per_s']:.2f} | "
                 f"{r['model_gflops']:.2f} | {100 * r['gemm_fraction']:.1f} | {r['model_gflops_per_cpu_s']:.2f} |")
    L.append("\nFramework overhead = Lightning throughput / plain-loop throughput "
             "(= plain step time / Lightning step time).\n")
    L.append("| variant/mode | median wall | min wall | median CPU | per round (median wall) "
             "| Lightning extra ms/step | Lightning loop outside the batch hooks ms/step |")
    L.append("|---|---|---|---|---|---|---|")
    for k, o in s["framework_overhead"].items():
        L.append(f"| {k} | {o['ratio']:.3f} | {o['ratio_min']:.3f} | {o['ratio_cpu']:.3f} | "
                 f"{', '.join(f'{x:.3f}' for x in o['per_round'])} | {o['extra_ms']:+.1f} | "
                 f"{o['outside_hooks_ms']:.2f} |")
    L.append("\n| SegCLR UDA / supervised step time | median wall | min wall | median CPU | per round |")
    L.append("|---|---|---|---|---|")
    for k, o in s["segclr_over_supervised"].items():
        if k != "flop_ratio":
            L.append(f"| {k} | {o['ratio']:.2f} | {o['ratio_min']:.2f} | {o['ratio_cpu']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in o['per_round'])} |")
    L.append(f"| model FLOP ratio | {s['segclr_over_supervised']['flop_ratio']:.2f} | | | |")
    L.append("\n## Data path (CombinedLoader + collation + BatchAugment, no model)\n")
    L.append("| mode | wall ms/step | CPU ms/step | images/s | x training throughput (Lightning) | per round |")
    L.append("|---|---|---|---|---|---|")
    for k, d in s["data_path"].items():
        L.append(f"| {k} | {d['step_ms']:.1f} | {d['cpu_ms']:.1f} | {d['images_per_s']:.1f} | "
                 f"{d['multiple_of_training']:.1f} | "
                 f"{', '.join(f'{x:.1f}' for x in d['per_round'])} |")
    i = s["inference"]
    L.append(f"\n## Inference (volume path: `{i['volume_path']}`)\n")
    L.append(f"B-scan {i['bscan_hw'][0]}x{i['bscan_hw'][1]} -> UNet input {i['padded_hw'][0]}x{i['padded_hw'][1]}, "
             f"{i['gflop_per_bscan']:.2f} GFLOP per B-scan (forward).\n")
    L.append("| B-scans/s | 49-slice volume s | 128-slice volume s | model GFLOP/s | 49 B-scans one by one "
             "(`Predictor.__call__`) s |")
    L.append("|---|---|---|---|---|")
    L.append(f"| {i['bscans_per_s']:.1f} | {i['volume49_s']:.2f} | {i['volume128_s']:.2f} | {i['model_gflops']:.1f} | "
             f"{i['bscan49_s']:.2f} |")
    L.append("\n| one batch of the volume path | ms |\n|---|---|")
    for k, v in i["per_batch_ms"].items():
        L.append(f"| {k} | {v:.1f} |")
    L.append("\n| 49-slice volume, volume path | s |\n|---|---|")
    L.append(f"| fp32 (shipped) | {i['volume49_s']:.2f} |")
    if i["volume49_torch_max_s"] is not None:
        L.append(f"| fp32, `torch.max(probs, 1).indices` in place of `argmax(1)` (not shipped) | "
                 f"{i['volume49_torch_max_s']:.2f} |")
    for v, t in i["volume49_s_by_variant"].items():
        L.append(f"| {v} (not shipped) | {t:.2f} |")
    mm = s["memory"]
    L.append("\n## Peak resident memory (ru_maxrss, fresh process each)\n")
    L.append("| process | peak MB | RSS after imports MB |\n|---|---|---|")
    L.append(f"| training: real `fit`, demo SegCLR UDA config, {mm['train_fit_steps']} steps (whole process) | "
             f"{mm['train_peak_mb']:.0f} | {mm['train_after_import_mb']:.0f} |")
    L.append(f"| - of which rendering the domains (DomainBank, before fit) | {mm['train_data_setup_peak_mb']:.0f} | |")
    if mm["train_fit_peak_mb"] is not None:
        L.append(f"| - of which `fit` itself (peak mark reset after rendering; RSS then "
                 f"{mm['train_after_data_mb']:.0f} MB) | {mm['train_fit_peak_mb']:.0f} | |")
    L.append(f"| inference: 128-slice volume (volume path) and 49 B-scans one by one | {mm['infer_peak_mb']:.0f} | "
             f"{mm['infer_after_import_mb']:.0f} |")
    L.append(f"| this benchmark's training process (all rows above) | {mm['bench_train_process_peak_mb']:.0f} | |")
    for k in ("train_cuda_max_allocated_mb", "infer_cuda_max_allocated_mb", "bench_train_cuda_max_allocated_mb"):
        if k in mm:
            L.append(f"| GPU: torch.cuda.max_memory_allocated, {k.replace('_cuda_max_allocated_mb', '')} | "
                     f"{mm[k]:.0f} | |")
    if s["threads_sweep"]:
        L.append("\n## Threads sweep (plain loop, synthetic batches of the same shapes)\n")
        L.append("| OMP_WAIT_POLICY | threads | mode | ms/step | model GFLOP/s | GEMM GFLOP/s at these threads "
                 "| % of GEMM |")
        L.append("|---|---|---|---|---|---|---|")
        for e in s["threads_sweep"]:
            for r in sorted(e["rows"], key=lambda r: (r["mode"], r["threads"])):
                L.append(f"| {e['omp_wait_policy']} | {r['threads']} | {r['mode']} | {r['step_ms']:.1f} | "
                         f"{r['model_gflops']:.2f} | {r['gemm_gflops']:.1f} | {100 * r['gemm_fraction']:.1f} |")
    L.append("\n## Targets\n")
    L.append("Verdicts on median wall time; where a CPU-time figure exists it is shown with its own verdict "
             "(for the GEMM fraction: model FLOPs per CPU-second over the GEMM limit per thread).\n")
    L.append("| target | measured (wall) | verdict | margin | measured (CPU time) | verdict (CPU time) |")
    L.append("|---|---|---|---|---|---|")
    for t in s["targets"]:
        L.append(f"| {t['target']} | {t['measured']} | {t['verdict']} | {t['margin']} | "
                 f"{t.get('measured_cpu', '')} | {t.get('verdict_cpu', '')} |")
    prof = s.get("profile")
    if prof:
        pu, ps = prof["segclr_uda"], prof["supervised"]
        L.append(f"\n## Profile (plain loop, {pu['steps']} steps each, torch.profiler, self time per step)\n")
        L.append("| op family | supervised ms | % | SegCLR UDA ms | % | UDA / supervised |\n|---|---|---|---|---|---|")
        for g in pu["groups_ms_per_step"]:
            a, b = ps["groups_ms_per_step"][g], pu["groups_ms_per_step"][g]
            L.append(f"| {g} | {a:.1f} | {100 * a / ps['total_self_ms_per_step']:.1f} | {b:.1f} | "
                     f"{100 * b / pu['total_self_ms_per_step']:.1f} | {b / a if a else float('nan'):.2f} |")
        a, b = ps["total_self_ms_per_step"], pu["total_self_ms_per_step"]
        L.append(f"| total | {a:.1f} | 100 | {b:.1f} | 100 | {b / a:.2f} |")
        cb = pu.get("conv_by_input_size") or {}
        if cb:
            tot = sum(d["fwd_ms"] + d["bwd_ms"] for d in cb.values()) or float("nan")
            totf = sum(d["fwd_gflop"] for d in cb.values()) or float("nan")
            L.append("\nConvolutions of the SegCLR UDA step by input size (forward FLOPs from the profiler's "
                     "estimate; times include the op's children; non-square sizes are BatchAugment's separable "
                     "blur, which has no backward):\n")
            L.append("| input HxW | fwd GFLOP/step | % of conv FLOPs | fwd ms/step | fwd GFLOP/s | bwd ms/step "
                     "| % of conv time |\n|---|---|---|---|---|---|---|")
            for res_, d in cb.items():
                rate = d["fwd_gflop"] / (d["fwd_ms"] / 1e3) if d["fwd_ms"] else float("nan")
                L.append(f"| {res_} | {d['fwd_gflop']:.2f} | {100 * d['fwd_gflop'] / totf:.1f} | "
                         f"{d['fwd_ms']:.1f} | {rate:.1f} | {d['bwd_ms']:.1f} | "
                         f"{100 * (d['fwd_ms'] + d['bwd_ms']) / tot:.1f} |")
        L.append(f"\nTop 10 ops of the SegCLR UDA step (sorted by {pu['sort_key']}, {pu['steps']} steps):\n")
        L.append("```\n" + pu["table"].rstrip() + "\n```")
    return "\n".join(L) + "\n"


def parse_args(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per path and round (default 5, quick 2)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, quick 2)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps (< 3 minutes on 2 CPU cores)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--variants", default=None,
                    help="comma list of fp32, bf16, fp32-cl, bf16-cl (default: fp32 on CPU, all four on CUDA)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the CPU threads / OMP wait-policy sweep")
    ap.add_argument("--no-profile", action="store_true", help="skip the torch.profiler table")
    ap.add_argument("--_worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--_result", type=Path, help=argparse.SUPPRESS)
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    q = args.quick
    args.steps = args.steps or (2 if q else 5)
    args.rounds = args.rounds or (2 if q else 3)
    args.warmup = 1 if q else 2
    args.gemm_reps = 2 if q else 3
    args.infer_reps = 1 if q else 3
    args.mem_steps = 4 if q else 10
    args.profile_steps = 2 if q else 3
    args.sweep_rounds = 1 if q else 2
    args.sweep_steps = 1 if q else 2
    args.variants = (args.variants.split(",") if args.variants
                     else (["fp32", "bf16", "fp32-cl", "bf16-cl"] if args.device == "cuda" else ["fp32"]))
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"--variants: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    if args.steps < 1 or args.rounds < 1:
        ap.error("--steps and --rounds must be >= 1")
    # What the workers need, forwarded verbatim (minus the private flags).
    args.cli = [a for a in raw if not a.startswith("--_")]
    args.forward = [f"--device={args.device}", f"--steps={args.steps}", f"--rounds={args.rounds}",
                    f"--threads={args.threads}", f"--variants={','.join(args.variants)}",
                    *(["--quick"] if q else []), *(["--no-profile"] if args.no_profile else [])]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args._worker:
        torch.manual_seed(0)
        out = WORKERS[args._worker](args)
        args._result.write_text(json.dumps(out))
        return

    start = time.perf_counter()
    load0, jiff0, self0 = os.getloadavg(), cpu_busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = machine_info(args)
    log(f"{machine['cpu']}, torch {machine['torch']}, {machine['torch_threads']} threads, device {args.device}")
    log("training / data path / profile (subprocess)")
    train = run_worker("train", args)
    log("inference (subprocess)")
    infer = run_worker("infer", args)
    log("training memory: real fit of the demo SegCLR UDA config (subprocess)")
    mem = run_worker("memtrain", args)
    sweep = []
    if args.device == "cpu" and not args.no_sweep:
        for policy in ("default", "PASSIVE"):
            log(f"threads sweep, OMP_WAIT_POLICY={policy} (subprocess)")
            if policy == "default":
                sweep.append(run_worker("threads", args, unset_env=("OMP_WAIT_POLICY",)))
            else:
                sweep.append(run_worker("threads", args, set_env={"OMP_WAIT_POLICY": policy}))
    jiff1, self1 = cpu_busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - start
    load = {"loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()), "wall_s": wall}
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    if jiff0 and jiff1:
        busy = (jiff1[0] - jiff0[0]) / hz
        mine = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
        load.update({"machine_busy_cores": busy / wall, "self_cores": mine / wall,
                     "others_cores": max(0.0, busy - mine) / wall})
    else:
        load.update({"machine_busy_cores": float("nan"), "self_cores": float("nan"), "others_cores": float("nan")})

    summary = summarize(args, machine, train, infer, mem, sweep, load)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2))
    md = render_md(summary)
    (args.out / "bench.md").write_text(md)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("raw", "profile")}, indent=2))
    print()
    print(md)
    log(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'} in {wall:.0f} s")


if __name__ == "__main__":
    main()
