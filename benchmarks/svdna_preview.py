"""Picture of SVDNA restyling: one real Spectralis B-scan restyled toward each simulated device.

Usage::

    python benchmarks/svdna_preview.py --out docs/svdna.png [--k K] [--no-histogram] [--seed 0]

One row pair per simulated device: the source B-scan (Spectralis patient 1, a labeled training
patient), the device's target-train B-scan it is restyled toward (patient 6, unlabeled), the SVDNA
result (segclr.data.svdna.svdna_restyle: the source's leading k singular components plus the
target's trailing ones, then the target's histogram) and, for comparison, the device's own
rendering of the same source B-scan; below each, a zoom on the speckle. All panels are at the
half-resolution working grid of the demo and the studies (248 rows); a device B-scan on another
pixel grid is resized to the source's working shape first, since SVDNA combines images of one size.

The studies restyle 128-pixel crops with k drawn from ``svdna.k`` (our default 16-48 of rank 128).
The whole B-scan here has a larger rank, so ``--k`` defaults to the middle of that range scaled to
it (k / rank = 32 / 128).
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from segclr.config import SVDNAConfig  # noqa: E402
from segclr.data.domains import DomainBank, all_domain_names  # noqa: E402
from segclr.data.svdna import svdna_restyle  # noqa: E402
from segclr.evaluation.report import save_figure  # noqa: E402


def _working(image: np.ndarray, shape: tuple[int, int] | None = None, height: int = 248) -> torch.Tensor:
    """(1, 1, h, w) float tensor at the working height (or at ``shape``), area-averaged."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if shape is None:
        shape = (height, max(1, round(image.shape[1] * height / image.shape[0])))
    return F.interpolate(x, size=shape, mode="area")


def _bscan(bank: DomainBank, domain: str, patient: int, index: int) -> np.ndarray:
    vol = next(v for v in bank.domain(domain) if v.patient == patient)
    return vol.images[min(index, len(vol.images) - 1)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/svdna.png"), help="PNG to write (default: %(default)s)")
    p.add_argument("--k", type=int, default=None, help="source components kept (default: 32/128 of the rank)")
    p.add_argument("--no-histogram", action="store_true", help="leave out the histogram-matching step")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default: %(default)s)")
    p.add_argument("--patient", type=int, default=1, help="source patient, 1-5 (default: %(default)s)")
    p.add_argument("--target-patient", type=int, default=6, help="target-train patient, 6-8 (default: %(default)s)")
    p.add_argument("--slice", type=int, default=5, help="B-scan index in each volume (default: %(default)s)")
    args = p.parse_args(argv)

    # the study's appearance-shift regime renders the devices on the source grid, where it exists
    kwargs = {"geometry": "source"} if "geometry" in inspect.signature(DomainBank).parameters else {}
    bank = DomainBank(args.seed, **kwargs)
    devices = [d for d in all_domain_names() if d != "spectralis"]
    src = _working(_bscan(bank, "spectralis", args.patient, args.slice))
    shape = tuple(src.shape[-2:])
    rank = min(shape)
    lo, hi = SVDNAConfig().k
    k = args.k if args.k is not None else round((lo + hi) / 2 / 128 * rank)
    histogram = not args.no_histogram

    h, w = shape
    y0, x0, zh, zw = int(h * 0.3), int(w * 0.35), h // 4, w // 4
    columns = ["Spectralis source (patient {p})", "{d} target B-scan (patient {t})",
               "SVDNA: source restyled toward it", "{d}'s own rendering of the source"]
    fig, axes = plt.subplots(2 * len(devices), 4, figsize=(4 * 3.2, len(devices) * (3.2 * h / w + 1.9)),
                             gridspec_kw={"height_ratios": [h / w, 0.55] * len(devices)}, squeeze=False)
    for r, dev in enumerate(devices):
        tgt = _working(_bscan(bank, dev, args.target_patient, args.slice), shape)
        own = _working(_bscan(bank, dev, args.patient, args.slice), shape)
        out = svdna_restyle(src, tgt, torch.tensor([k]), histogram=histogram)
        for c, (img, title) in enumerate(zip((src, tgt, out, own), columns)):
            im = img[0, 0].numpy()
            top, zoom = axes[2 * r, c], axes[2 * r + 1, c]
            top.imshow(im, cmap="gray", vmin=0, vmax=1)
            top.set_title(title.format(p=args.patient, t=args.target_patient, d=dev), fontsize=8)
            zoom.imshow(im[y0:y0 + zh, x0:x0 + zw], cmap="gray", vmin=0, vmax=1)
            zoom.set_title("zoom", fontsize=7)
            for ax in (top, zoom):
                ax.axis("off")
    fig.suptitle(f"SVDNA (our implementation): keep the source's first k = {k} of {rank} singular components,\n"
                 f"add the target's rest{', then match its histogram' if histogram else ''}. "
                 f"Simulated devices, working resolution {h} x {w}.", fontsize=9)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out)
    print(f"wrote {args.out} (k = {k}, histogram {'on' if histogram else 'off'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
