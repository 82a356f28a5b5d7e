"""CPU threads sweep: plain-loop steps at 1, 2, 4, ... N torch threads (run once per OpenMP wait policy)."""

from __future__ import annotations

import os

import torch

from segclr.bench.common import MODES, demo_config, log, median, quiet
from segclr.bench.gemm import gemm_gflops
from segclr.bench.training import plain_run


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
