"""Predicted fluid on burned-in overlays (glyph, scale bar, text, fundus inset) on the test B-scans.

    python benchmarks/bench_overlays.py --checkpoint segclr-demo/supervised/model.safetensors \
        [--domains spectralis cirrus_like topcon_like] [--out DIR] [--seed 0]
    python benchmarks/bench_overlays.py --time-augment   # cost of segclr.data.overlays_aug on training crops

For every test B-scan (patients 9-10) of each domain, :func:`segclr.evaluation.overlay_check.overlay_variant`
burns a fixed, seeded set of export overlays into it; the model segments it at the B-scan's spacing, and the
score is the predicted fluid on the overlay pixels (dilated by 2 px) as a share of all the B-scan's pixels.
Target: at most 0.05 % on every B-scan. Beside it the same pixels on the clean B-scan (control: fluid
predicted there without overlays).

Prints one table row per domain (B-scans, mean and max share, B-scans above 0.05 %, the clean control),
writes ``DIR/overlay_check.json`` (atomically) and ``DIR/overlay_check_worst.png``: the worst B-scan with
its overlays outlined and the predicted fluid in colour (on the overlays magenta, elsewhere green).
The domains are rendered with the bundle's own simulation seed and geometry (from its training config).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def time_augment(batch: int, size: int, p: float, iters: int, threads: int) -> dict:
    import torch

    from segclr.data.overlays_aug import burn_overlays

    if threads:
        torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    images = 0.05 + 0.1 * torch.rand(batch, 1, size, size, generator=g)
    images[:, :, size // 3: 2 * size // 3] += 0.5
    masks = torch.zeros(batch, size, size, dtype=torch.long)
    for _ in range(20):
        burn_overlays(images, masks, p, g)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        burn_overlays(images, masks, p, g)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"batch": batch, "size": size, "p": p, "iters": iters, "torch_threads": torch.get_num_threads(),
            "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min())}


def worst_figure(path: Path, title: str, image: np.ndarray, overlay: np.ndarray, pred: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.ndimage import binary_dilation

    from segclr.evaluation.overlay_check import DILATION_PX
    from segclr.evaluation.report import save_figure

    zone = binary_dilation(overlay, structure=np.ones((2 * DILATION_PX + 1,) * 2, dtype=bool))
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1).astype(np.float32)
    edge = zone & binary_dilation(~zone)  # the dilated overlay's outline
    rgb[edge] = (1.0, 0.8, 0.1)
    fluid = pred > 0
    for sel, colour in ((fluid & ~zone, (0.1, 0.85, 0.2)), (fluid & zone, (1.0, 0.1, 0.9))):
        rgb[sel] = 0.35 * rgb[sel] + 0.65 * np.asarray(colour, dtype=np.float32)
    h, w = image.shape
    fig, ax = plt.subplots(1, 2, figsize=(2 * 6.0, 6.0 * h / w + 0.6))
    ax[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    ax[0].set_title("B-scan with burned-in overlays")
    ax[1].imshow(rgb)
    ax[1].set_title("fluid on overlays (magenta), elsewhere (green), overlay zone (yellow)")
    for a in ax:
        a.axis("off")
    fig.suptitle(title)
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="model bundle (model.safetensors) to check")
    ap.add_argument("--domains", nargs="+", default=["spectralis", "cirrus_like", "topcon_like"])
    ap.add_argument("--out", type=Path, default=Path("runs/overlay_check"), help="folder for the JSON and PNG")
    ap.add_argument("--seed", type=int, default=0, help="overlay layout seed (B-scan i gets seed + i)")
    ap.add_argument("--time-augment", action="store_true", help="time the training augmentation instead")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for --time-augment (0: default)")
    ap.add_argument("--no-postprocess", action="store_true",
                    help="check the network's raw masks (skip the bundle's post-processing, as predict's flag does)")
    args = ap.parse_args()

    if args.time_augment:
        print(f"machine: {platform.machine()} {platform.processor() or ''}".strip())
        for p in (1.0, 0.5):
            r = time_augment(args.batch, args.size, p, args.iters, args.threads)
            print(f"burn_overlays B={r['batch']} {r['size']}x{r['size']} p={p}: median {r['median_ms']:.2f} ms, "
                  f"p90 {r['p90_ms']:.2f} ms, min {r['min_ms']:.2f} ms ({r['torch_threads']} torch threads)")
        return
    if args.checkpoint is None:
        ap.error("--checkpoint is required (or --time-augment)")

    from segclr.data.domains import DomainBank
    from segclr.evaluation.overlay_check import TARGET_FRACTION, overlay_fluid_fraction
    from segclr.inference.predict import Predictor
    from segclr.io.atomic import atomic_write_text

    start = time.perf_counter()
    predictor = Predictor(args.checkpoint, postprocess=not args.no_postprocess)
    training = predictor.meta.get("training", {})
    data_cfg = training.get("config", {}).get("data", {})
    bank = DomainBank(int(data_cfg.get("simulation_seed", 0)), geometry=data_cfg.get("geometry", "native"))
    results, worst = {}, None
    header = (f"{'domain':<13} {'B-scans':>7} {'mean %':>8} {'max %':>8} {'> 0.05 %':>8} "
              f"{'clean mean %':>12} {'clean max %':>11}")
    print(header, flush=True)
    for domain in args.domains:
        names, images, spacings = [], [], []
        for v in bank.volumes(domain, "test"):
            names += [f"patient{v.patient:02d}/{n}" for n in v.names]
            images += list(v.images)
            spacings += [v.spacing_um] * len(v.images)
        res = overlay_fluid_fraction(predictor, images, spacings, seed=args.seed, keep=True)
        s = res.scores[res.worst]
        if worst is None or s.fraction > worst[1].fraction:
            worst = (f"{domain}/{names[res.worst]}", s)
        results[domain] = {
            "bscans": len(images), "mean_fraction": res.mean, "max_fraction": res.max,
            "over_target": res.over_target, "worst": names[res.worst],
            "clean_mean_fraction": float(np.nanmean(res.clean_fractions)),
            "clean_max_fraction": float(np.nanmax(res.clean_fractions)),
            "per_bscan": {n: {"fraction": float(f), "clean_fraction": float(c), "fluid_pixels": sc.fluid_pixels,
                              "overlay_pixels": sc.overlay_pixels}
                          for n, f, c, sc in zip(names, res.fractions, res.clean_fractions, res.scores)},
        }
        r = results[domain]
        print(f"{domain:<13} {r['bscans']:>7} {100 * r['mean_fraction']:>8.4f} {100 * r['max_fraction']:>8.4f} "
                    f"{r['over_target']:>8} {100 * r['clean_mean_fraction']:>12.4f} "
                    f"{100 * r['clean_max_fraction']:>11.4f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    name, s = worst
    png = args.out / "overlay_check_worst.png"
    worst_figure(png, f"{Path(args.checkpoint)}: worst B-scan {name}, fluid on overlays "
                      f"{100 * s.fraction:.3f} % of the image (target <= {100 * TARGET_FRACTION:.2f} %)",
                 s.image, s.overlay, s.prediction)
    report = {
        "checkpoint": str(args.checkpoint), "postprocess": predictor.applied_postprocess,
        "training_steps": training.get("steps"), "mode": training.get("mode"),
        "seed": args.seed, "target_fraction": TARGET_FRACTION, "dilation_px": 2,
        "patients": "test (9-10)", "domains": results, "worst": name, "figure": png.name,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(args.out / "overlay_check.json", json.dumps(report, indent=2) + "\n")
    print(f"model {args.checkpoint} ({training.get('mode')}, {training.get('steps')} steps); "
          f"worst B-scan {name}: {100 * s.fraction:.4f} %; wrote {args.out / 'overlay_check.json'} and {png}")


if __name__ == "__main__":
    main()
