"""Paired timing of ``segclr predict``'s volume path: the predictor's network as shipped against simpler ones.

The predictor folds every batch norm into the convolution before it (``segclr.models.fold_batch_norm``:
in eval mode a batch norm is a fixed affine, so one memory-bound pass per feature map goes away) and,
on the CPU, keeps the folded weights in channels_last (``inference_memory_format``), where oneDNN runs
the thin full-resolution convolutions several times faster. This script runs the shipped volume path
(``segment_volume``, 8 B-scans per batch) on the bench's 49-slice volume of real embedded Duke B-scans
(496 x 576, Duke spacing) with the packaged default model, with three networks in turn (the order
rotates every round), in one process: ``shipped`` (folded, the shipped layout), ``folded`` (folded,
contiguous) and ``as stored`` (the bundle's network, batch norm and all). It reports the median
seconds of each, in how many rounds each beat ``as stored``, and how many mask pixels differ from
``as stored``. ``--no-postprocess`` times the raw masks.

Run on a quiet machine: ``python benchmarks/fold_pairs.py [--rounds 6] [--no-postprocess]``.
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
from segclr.inference.predict import Predictor, inference_memory_format, stored_network
from segclr.inference.shift import split_bundle_tensors
from segclr.inference.volumes import segment_volume
from segclr.io.bundle import load_bundle
from segclr.io.volumes import Volume
from segclr.models import UNet, fold_batch_norm


def unfolded_net(bundle) -> UNet:
    state, meta = load_bundle(bundle)
    return stored_network(bundle, split_bundle_tensors(state)[0], meta)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", "--pairs", dest="rounds", type=int, default=6,
                    help="timed rounds of the three networks, after one untimed round (--pairs: the older name)")
    ap.add_argument("--no-postprocess", action="store_true", help="time the raw masks (network only)")
    args = ap.parse_args(argv)

    model = default_model()
    predictor = Predictor(model.bundle, postprocess=not args.no_postprocess)
    folded = unfolded_net(model.bundle)
    fold_batch_norm(folded)
    nets = {"shipped": predictor.net, "folded": folded, "as stored": unfolded_net(model.bundle)}
    images = [img for v in load_spectralis(patients=(1, 2, 3, 4, 5)) for img in v.images][:N_SLICES]
    volume = Volume(np.stack(images).astype(np.float32), DUKE_SPACING_MM)
    print(f"model {model.name}; {len(images)} B-scans of {images[0].shape[0]} x {images[0].shape[1]}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; shipped layout "
          f"{inference_memory_format(predictor.device)}; post-processing "
          f"{'off' if args.no_postprocess else 'on'}", flush=True)

    def run(name: str) -> tuple[float, np.ndarray]:
        predictor.net = nets[name]
        t = time.perf_counter()
        masks = segment_volume(predictor, volume)
        return time.perf_counter() - t, masks

    names = list(nets)
    times: dict[str, list[float]] = {name: [] for name in names}
    masks: dict[str, np.ndarray] = {}
    for rnd in range(args.rounds + 1):
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            t, masks[name] = run(name)
            if rnd:  # round 0 is the untimed warm-up
                times[name].append(t)
        if rnd:
            print(f"round {rnd}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names), flush=True)
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f"\n| 49-slice volume path, post-processing {'off' if args.no_postprocess else 'on'} | median s "
          f"| speed-up over as stored | rounds faster than as stored | mask pixels differing from as stored | rounds |")
    print("|---|---|---|---|---|---|")
    base = times["as stored"]
    for n in names:
        wins = sum(a < b for a, b in zip(times[n], base))
        differ = int((masks[n] != masks["as stored"]).sum())
        print(f"| {n} | {med[n]:.2f} | {med['as stored'] / med[n]:.2f}x | {wins if n != 'as stored' else ''} "
              f"| {differ} of {masks[n].size} | {', '.join(f'{t:.2f}' for t in times[n])} |")

if __name__ == "__main__":
    main()
