"""Memory layouts and recomputation for the UNet's full-resolution stage, on the CPU (speed issue, item 1).

The full-resolution stage (the first encoder block, the last decoder block and the 1x1 output: 1 to 16
channels at 128 x 128) holds most of the training step's convolution time (docs/performance.md). This
script measures, in one process and on the demo's shapes, what the layout levers do to it:

1. **Ops.** Forward and forward+backward of its ops at batch 8 (the supervised step encodes 8 images)
   and 40 (SegCLR UDA encodes 40): the 8->8 and 16->8 3x3 convolutions in the default layout
   (oneDNN), in channels_last (oneDNN) and with oneDNN off (PyTorch's own im2col path); batch norm
   + ReLU on 8 channels, contiguous and channels_last, with PyTorch's kernel and with batch norm
   written as a per-channel mean/variance plus one affine (``ChannelsLastBatchNorm``).
2. **The whole UNet**, forward + backward of ``net(x)``, same weights, variants taken in turn within
   each round (the order rotates every round), median over rounds:
   - ``shipped``: everything contiguous;
   - ``channels_last``: the whole network;
   - ``cl_convs``: only the full-resolution convolutions in channels_last, converting at each;
   - ``cl_stage``: the full-resolution stage in channels_last end to end (converted once on the way
     in and once on the way out of each of its blocks), batch norm as in ``ChannelsLastBatchNorm``;
   - ``recompute``: the full-resolution blocks recomputed in backward (``torch.utils.checkpoint``)
     instead of storing their activations.
   Every variant computes the same function; the script checks the logits against ``shipped``.

Run on a quiet machine: ``python benchmarks/fullres_layouts.py [--rounds 5] [--batches 8 40]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from segclr.models.unet import UNet

CL = torch.channels_last


class ChannelsLastBatchNorm(nn.BatchNorm2d):
    """Training-mode batch norm as mean/variance per channel plus one affine, so it keeps the input's layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        with torch.no_grad():
            n = x.numel() / x.shape[1]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
            self.num_batches_tracked += 1
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale.view(1, -1, 1, 1) + (self.bias - mean * scale).view(1, -1, 1, 1)


class InFormat(nn.Module):
    """Runs ``m`` on its input in ``fmt``; ``back`` converts the output to the default layout."""

    def __init__(self, m: nn.Module, fmt: torch.memory_format, back: bool = False) -> None:
        super().__init__()
        self.m, self.fmt, self.back = m, fmt, back

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.m(x.contiguous(memory_format=self.fmt))
        return y.contiguous() if self.back else y


class Recompute(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint(self.m, x, use_reentrant=False)


def _swap_bn(block: nn.Sequential) -> None:
    for i, m in enumerate(block):
        if type(m) is nn.BatchNorm2d:
            bn = ChannelsLastBatchNorm(m.num_features)
            bn.load_state_dict(m.state_dict())
            block[i] = bn


def build(variant: str, state: dict) -> UNet:
    net = UNet(1, 2, base_channels=8, depth=4)
    net.load_state_dict(state)
    if variant == "channels_last":
        net.to(memory_format=CL)
    elif variant == "cl_convs":
        for block in (net.encoder[0], net.decoder[-1]):
            for i, m in enumerate(block):
                if type(m) is nn.Conv2d:
                    block[i] = InFormat(m.to(memory_format=CL), CL, back=True)
    elif variant == "cl_stage":
        for block in (net.encoder[0], net.decoder[-1]):
            _swap_bn(block)
            block.to(memory_format=CL)
        net.encoder[0] = InFormat(net.encoder[0], CL)
        net.encoder[1] = InFormat(net.encoder[1], torch.contiguous_format)
        net.decoder[-1] = InFormat(net.decoder[-1], CL)
        net.out = InFormat(net.out.to(memory_format=CL), CL, back=True)
    elif variant == "recompute":
        net.encoder[0], net.decoder[-1] = Recompute(net.encoder[0]), Recompute(net.decoder[-1])
    elif variant != "shipped":
        raise ValueError(variant)
    return net


def timed(fn, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def op_rows(n: int, reps: int) -> list[str]:
    rows = []
    for cin in (8, 16):
        x0 = torch.randn(n, cin, 128, 128)
        w0 = torch.randn(8, cin, 3, 3) * 0.1
        gflop = 2 * n * 8 * cin * 9 * 128 * 128 / 1e9
        for name, fmt, onednn in (("contiguous, oneDNN", torch.contiguous_format, True),
                                  ("channels_last, oneDNN", CL, True),
                                  ("contiguous, oneDNN off", torch.contiguous_format, False)):
            x = x0.contiguous(memory_format=fmt).requires_grad_()
            w = w0.contiguous(memory_format=fmt).requires_grad_()

            def fb():
                F.conv2d(x, w, padding=1).sum().backward()

            with torch.backends.mkldnn.flags(enabled=onednn):
                f = timed(lambda: F.conv2d(x, w, padding=1), reps)
                b = timed(fb, reps)
            rows.append(f"| {n} | conv 3x3 {cin}->8 | {name} | {1e3 * f:.1f} | {1e3 * b:.1f} | {gflop / f:.1f} |")
    x0 = torch.randn(n, 8, 128, 128)
    for name, fmt, cls in (("contiguous, PyTorch kernel", torch.contiguous_format, nn.BatchNorm2d),
                           ("channels_last, PyTorch kernel", CL, nn.BatchNorm2d),
                           ("channels_last, ChannelsLastBatchNorm", CL, ChannelsLastBatchNorm)):
        bn = cls(8)
        x = x0.contiguous(memory_format=fmt).requires_grad_()

        def fb():
            F.relu(bn(x)).sum().backward()

        f = timed(lambda: F.relu(bn(x)), reps)
        b = timed(fb, reps)
        rows.append(f"| {n} | batch norm + ReLU, 8 ch | {name} | {1e3 * f:.1f} | {1e3 * b:.1f} | |")
    return rows


VARIANTS = ("shipped", "channels_last", "cl_convs", "cl_stage", "recompute")


def unet_rows(n: int, rounds: int, reps: int) -> list[str]:
    torch.manual_seed(0)
    state = UNet(1, 2, base_channels=8, depth=4).state_dict()
    x = torch.randn(n, 1, 128, 128)
    nets = {v: build(v, state) for v in VARIANTS}
    with torch.no_grad():
        ref = nets["shipped"].eval()(x)
        diff = {v: (nets[v].eval()(x) - ref).abs().max().item() for v in VARIANTS}
    for net in nets.values():
        net.train()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        for v in order:
            net = nets[v]

            def step():
                net.zero_grad(set_to_none=True)
                net(x).square().mean().backward()

            times[v].append(timed(step, reps))
        print(f"[fullres] batch {n} round {r + 1}/{rounds}: "
              + ", ".join(f"{v} {1e3 * times[v][-1]:.0f} ms" for v in VARIANTS), flush=True)
    base = statistics.median(times["shipped"])
    rows = []
    for v in VARIANTS:
        med = statistics.median(times[v])
        faster = sum(a < b for a, b in zip(times[v], times["shipped"]))
        rows.append(f"| {n} | {v} | {1e3 * med:.0f} | {base / med:.2f}x | "
                    f"{faster if v != 'shipped' else ''} | {diff[v]:.1e} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the whole-UNet comparison")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per median, after one warm-up")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 40], help="images per forward")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| batch | op | layout / kernel | forward ms | forward+backward ms | forward GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for n in args.batches:
        print("\n".join(op_rows(n, args.reps)), flush=True)
    lines = []
    for n in args.batches:
        lines += unet_rows(n, args.rounds, args.reps)
    print(f"\nWhole UNet (base 8, depth 4, 128 x 128), forward+backward, median of {args.rounds} rounds "
          f"(each the median of {args.reps} steps):\n")
    print("| batch | variant | ms | speed-up over shipped | rounds faster than shipped | max logit difference |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
