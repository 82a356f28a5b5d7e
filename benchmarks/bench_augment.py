"""Throughput of BatchAugment: one batched call vs. a per-image Python loop.

Usage::

    python benchmarks/bench_augment.py [--device cpu|cuda] [--batch 32] [--size 128]
                                       [--iters 20] [--warmup 3] [--threads 0]

Both paths apply the same module with the default :class:`AugmentConfig` and masks; the
naive path calls it on ``B = 1`` slices one sample at a time, as a per-image dataset
transform would. Prints images/s for both and their ratio.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from segclr.config import AugmentConfig
from segclr.data.augment import BatchAugment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, iters: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 1, args.size, args.size, device=device)
    masks = torch.randint(0, 2, (args.batch, args.size, args.size), device=device)
    aug = BatchAugment(AugmentConfig()).to(device)

    def batched() -> None:
        aug(images, masks)

    def per_image() -> None:
        outs = [aug(images[i : i + 1], masks[i : i + 1]) for i in range(args.batch)]
        torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    n_images = args.batch * args.iters
    t_batched = _time(batched, args.iters, args.warmup, device)
    t_loop = _time(per_image, args.iters, args.warmup, device)
    ips_batched = n_images / t_batched
    ips_loop = n_images / t_loop

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"batch ({args.batch}, 1, {args.size}, {args.size}), {args.iters} iterations after {args.warmup} warm-up")
    print(f"batched   : {ips_batched:10.1f} images/s  ({1e3 * t_batched / args.iters:8.2f} ms/batch)")
    print(f"per-image : {ips_loop:10.1f} images/s  ({1e3 * t_loop / args.iters:8.2f} ms/batch)")
    print(f"speed-up  : {ips_batched / ips_loop:10.2f}x")


if __name__ == "__main__":
    main()
