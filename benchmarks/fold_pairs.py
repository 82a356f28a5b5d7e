"""Paired timing of ``segclr predict``'s volume path with batch norm folded into the convolutions and without.

The predictor folds every batch norm into the convolution before it (``segclr.models.fold_batch_norm``):
in eval mode a batch norm is a fixed affine, so one memory-bound pass per feature map goes away. This
script runs the shipped volume path (``segment_volume``, 8 B-scans per batch) on the bench's 49-slice
volume of real embedded Duke B-scans (496 x 576, Duke spacing) with the packaged default model, once
with the folded network (as shipped) and once with the bundle's network as stored, alternating which
goes first, in one process. It reports the median seconds of each, how many pairs the folded one won,
and how many mask pixels differ. ``--no-postprocess`` times the raw masks (the network part alone).

Run on a quiet machine: ``python benchmarks/fold_pairs.py [--pairs 6] [--no-postprocess]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from segclr.bench.cli_volume import DUKE_SPACING_MM, N_SLICES
from segclr.data.domains import load_spectralis
from segclr.inference.packaged import default_model
from segclr.inference.predict import Predictor
from segclr.inference.volumes import segment_volume
from segclr.io.bundle import load_bundle
from segclr.io.volumes import Volume
from segclr.models import UNet


def unfolded_net(predictor: Predictor, bundle) -> UNet:
    state, _ = load_bundle(bundle)
    m = predictor.meta["model"]
    net = UNet(1, m["num_classes"], m["base_channels"], m["depth"], m["norm"], m.get("dropout", 0.0),
               m.get("stem", "conv"))
    net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()})
    return net.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=6, help="timed pairs (after one untimed pair)")
    ap.add_argument("--no-postprocess", action="store_true", help="time the raw masks (network only)")
    args = ap.parse_args(argv)

    model = default_model()
    predictor = Predictor(model.bundle, postprocess=not args.no_postprocess)
    nets = {"folded": predictor.net, "as stored": unfolded_net(predictor, model.bundle)}
    images = [img for v in load_spectralis(patients=(1, 2, 3, 4, 5)) for img in v.images][:N_SLICES]
    volume = Volume(np.stack(images).astype(np.float32), DUKE_SPACING_MM)
    print(f"model {model.name}; {len(images)} B-scans of {images[0].shape[0]} x {images[0].shape[1]}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; post-processing "
          f"{'off' if args.no_postprocess else 'on'}", flush=True)

    def run(name: str) -> tuple[float, np.ndarray]:
        predictor.net = nets[name]
        t = time.perf_counter()
        masks = segment_volume(predictor, volume)
        return time.perf_counter() - t, masks

    times: dict[str, list[float]] = {name: [] for name in nets}
    masks: dict[str, np.ndarray] = {}
    for pair in range(args.pairs + 1):
        order = list(nets) if pair % 2 == 0 else list(nets)[::-1]
        for name in order:
            t, masks[name] = run(name)
            if pair:
                times[name].append(t)
        if pair:
            print(f"pair {pair}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in nets), flush=True)
    differ = int((masks["folded"] != masks["as stored"]).sum())
    wins = sum(a < b for a, b in zip(times["folded"], times["as stored"]))
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f"\n| 49-slice volume path, post-processing {'off' if args.no_postprocess else 'on'} | median s | pairs |")
    print("|---|---|---|")
    for n in nets:
        print(f"| {n} | {med[n]:.2f} | {', '.join(f'{t:.2f}' for t in times[n])} |")
    print(f"\nfolded faster in {wins} of {args.pairs} pairs; speed-up of the medians "
          f"{med['as stored'] / med['folded']:.2f}x; mask pixels that differ: {differ} of {masks['folded'].size}")


if __name__ == "__main__":
    main()
