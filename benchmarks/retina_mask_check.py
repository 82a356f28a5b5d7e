"""How well the post-processing's tissue mask (segclr.inference.postprocess.retina_mask) holds the reference fluid.

Over the labeled TRAINING patients 1-8 of each benchmark domain (the test patients 9-10 are not read):
the share of reference fluid pixels inside the mask (fluid outside would be deleted by ``retina_only``)
and the share of the image the mask covers.

    python benchmarks/retina_mask_check.py [--domains spectralis cirrus_like topcon_like]
"""

from __future__ import annotations

import argparse

import numpy as np

from segclr.data.domains import DomainBank
from segclr.inference.postprocess import retina_mask


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="+", default=["spectralis", "cirrus_like", "topcon_like"])
    args = ap.parse_args(argv)
    bank = DomainBank(0)
    print("| domain | B-scans | reference fluid pixels | outside the mask | inside | mean image share covered |")
    print("|---|---|---|---|---|---|")
    for d in args.domains:
        vols = bank.volumes(d, "source_train") + bank.volumes(d, "target_train")
        fluid = outside = 0
        cover = []
        for v in vols:
            for img, ref in zip(v.images, v.masks):
                mask = retina_mask(img)
                f = ref > 0
                fluid += int(f.sum())
                outside += int((f & ~mask).sum())
                cover.append(float(mask.mean()))
        inside = 100.0 * (fluid - outside) / max(1, fluid)
        print(f"| {d} | {len(cover)} | {fluid:,} | {outside:,} | {inside:.3f} % | {100 * np.mean(cover):.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
