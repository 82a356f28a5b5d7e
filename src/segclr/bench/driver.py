"""Options, one fresh interpreter per worker, and ``main`` (``segclr bench`` / ``python -m segclr.bench``)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from segclr.bench.common import VARIANTS, log
from segclr.bench.inference import worker_infer
from segclr.bench.machine import cpu_busy_jiffies, machine_info, others_cores
from segclr.bench.memory import worker_memtrain
from segclr.bench.report import render_md, summarize
from segclr.bench.threads import worker_threads
from segclr.bench.training import worker_train
from segclr.inference.allocator import keep_freed_memory
from segclr.io.atomic import atomic_write_text

DEFAULT_OUT = Path("segclr-bench")
WORKERS = {"train": worker_train, "infer": worker_infer, "memtrain": worker_memtrain, "threads": worker_threads}


def run_worker(name: str, args, set_env: dict | None = None, unset_env: tuple[str, ...] = ()) -> dict:
    """Run one worker in a fresh interpreter (clean peak memory, OpenMP settings read at start-up)."""
    env = {k: v for k, v in os.environ.items() if k not in unset_env}
    env.update(set_env or {})
    # the worker imports the same segclr as this process, installed or not
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([here, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "segclr.bench", "--_worker", name, "--_result", str(result),
               *args.forward]
        t, jiff0, self0 = time.perf_counter(), cpu_busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark worker '{name}' failed with exit code {proc.returncode}")
        out = json.loads(result.read_text())
        out["wall_s"] = time.perf_counter() - t
        out["others_cores"] = others_cores(jiff0, cpu_busy_jiffies(), self0, out["wall_s"])
    log(f"worker '{name}' finished in {out['wall_s']:.0f} s")
    # each worker's raw result as soon as it exists: a run stopped later (a timeout on a lent GPU) keeps it
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"worker_{name}.json", json.dumps(out))
    return out


def parse_args(argv: list[str] | None, prog: str | None = None, default_out: Path = DEFAULT_OUT):
    import segclr.bench

    ap = argparse.ArgumentParser(prog=prog, description=segclr.bench.__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", type=Path, default=default_out, help="where bench.json and bench.md go "
                    "(default: %(default)s)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per path and round (default 5, quick 2)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, quick 2)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps (< 3 minutes on 2 CPU cores)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--variants", default=None,
                    help=f"comma list of {', '.join(VARIANTS)} (-cl: channels_last; -s2d, -s2dr: the s2d and "
                    "s2d_refine stems; -c: torch.compile per UNet block, training rows only) "
                    "(default: fp32 on CPU, fp32,bf16,fp32-cl,bf16-cl on CUDA)")
    ap.add_argument("--malloc", choices=("default", "fixed"), default="fixed",
                    help="glibc allocator in the workers: fixed (no mmap for large blocks, no heap trimming, as "
                    "the segclr commands that train or predict run since 2026-11-28), or glibc's default "
                    "(default: %(default)s)")
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
    args.prog = prog or "segclr bench"
    args.forward = [f"--device={args.device}", f"--steps={args.steps}", f"--rounds={args.rounds}",
                    f"--threads={args.threads}", f"--variants={','.join(args.variants)}", f"--malloc={args.malloc}",
                    *(["--quick"] if q else []), *(["--no-profile"] if args.no_profile else [])]
    return args


def main(argv: list[str] | None = None, prog: str | None = None, default_out: Path = DEFAULT_OUT) -> None:
    args = parse_args(argv, prog, default_out)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args._worker:
        if args.malloc == "fixed" and not keep_freed_memory():
            log("--malloc fixed: not in effect (not glibc, or SEGCLR_MALLOC=default); the allocator is left as it is")
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
