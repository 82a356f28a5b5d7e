"""Fluid pocket sizes per labeled TRAINING patient of the embedded Spectralis data (patients 1-8;
the test patients 9-10 are never read), at full resolution: how many B-scans hold no fluid, the
median fluid pixels per B-scan with fluid, and the connected fluid components (median size, share
under 200 pixels). It is what chose the validation split of quality_search2_cpu (docs/quality.md 1b).

    python benchmarks/pocket_sizes.py
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

from segclr.data.domains import load_spectralis, patients_for

SMALL_PX = 200


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    patients = tuple(sorted(patients_for("source_train") + patients_for("target_train")))
    print("| patient | B-scans | without fluid | median fluid px per B-scan with fluid | components "
          f"| median component px | components < {SMALL_PX} px |")
    print("|---|---|---|---|---|---|---|")
    for vol in load_spectralis(patients=patients):
        per_bscan = np.array([int((m > 0).sum()) for m in vol.masks])
        sizes = np.concatenate([np.bincount(ndimage.label(m > 0)[0].ravel())[1:] for m in vol.masks])
        with_fluid = per_bscan[per_bscan > 0]
        print(f"| {vol.patient} | {len(per_bscan)} | {int((per_bscan == 0).sum())} "
              f"| {int(np.median(with_fluid)) if with_fluid.size else 0:,} | {sizes.size} "
              f"| {int(np.median(sizes)) if sizes.size else 0} "
              f"| {float((sizes < SMALL_PX).mean()) if sizes.size else 0.0:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
