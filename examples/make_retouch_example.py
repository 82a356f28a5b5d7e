"""Write a small RETOUCH-format folder (or nnU-Net raw dataset) from segclr's embedded data.

    python examples/make_retouch_example.py OUT                   # OUT/spectralis_09/{oct,reference}.{mhd,raw}, ...
    python examples/make_retouch_example.py OUT --patients 1 2 3  # other patients
    python examples/make_retouch_example.py OUT --layout nnunet   # OUT/dataset.json, imagesTr/, labelsTr/, domains.json
    python examples/make_retouch_example.py OUT --dataset-file D.yaml  # also a dataset file for `fit`

Each case is one Duke DME patient (real Heidelberg Spectralis B-scans, Chiu et al. 2015): the 11
annotated B-scans, cropped to the annotated columns, as a uint8 volume (11, 496, 576) with the
device's pixel spacing (3.87 um axial, 11.3 um lateral). The fluid label (binary in Duke) is
written as RETOUCH label 1 (IRF). The 11 annotated B-scans are not neighbours in the original
61-line scan, so the slice spacing (0.12 mm) is nominal and fluid volumes on this example are
illustrative only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from segclr.data.domains import SPLITS, load_spectralis
from segclr.io.metaimage import write_metaimage
from segclr.io.nnunet import write_dataset
from segclr.io.volumes import RETOUCH_LABELS, Volume

SPACING_MM = (0.12, 0.00387, 0.0113)  # (z: nominal B-scan spacing, y: axial, x: lateral)


def make_retouch_example(out: str | Path, patients: tuple[int, ...] = SPLITS["test"], layout: str = "retouch") -> Path:
    """Write the example into ``out`` (must not exist or be empty); returns ``out``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: exists and is not empty")
    cases = []
    for vol in load_spectralis(patients=tuple(patients)):
        image = np.rint(np.stack(vol.images) * 255.0).astype(np.uint8)
        label = np.stack(vol.masks).astype(np.uint8)  # 0 background, 1 fluid -> RETOUCH 1 (IRF)
        case = f"spectralis_{vol.patient:02d}"
        cases.append((case, Volume(image, SPACING_MM), Volume(label, SPACING_MM), "spectralis"))
    if not cases:
        raise SystemExit(f"no embedded patients among {patients} (there are 1..10)")
    if layout == "nnunet":
        labels = {"background": 0, **{name: value for value, name in RETOUCH_LABELS.items()}}
        write_dataset(out, cases, labels, name="segclr_retouch_example")
    else:
        for case, image, label, _ in cases:
            write_metaimage(out / case / "oct.mhd", image)
            write_metaimage(out / case / "reference.mhd", label)
    return out


def write_dataset_file(path: Path, retouch_root: Path) -> None:
    """A segclr dataset file over the RETOUCH cases of ``retouch_root`` (paths relative to ``path``)."""
    import os

    import yaml

    cases = sorted(p for p in Path(retouch_root).iterdir() if (p / "oct.mhd").is_file())
    entries = []
    for k, case in enumerate(cases):
        rel = Path(os.path.relpath(case, Path(path).resolve().parent if Path(path).is_absolute() else Path(path).parent))
        entries.append({"image": str(rel / "oct.mhd"), "label": str(rel / "reference.mhd"),
                        "role": "source_train" if k == 0 else "test"})
    Path(path).write_text(yaml.safe_dump({"domains": {"spectralis": entries}}, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--patients", type=int, nargs="+", default=list(SPLITS["test"]), help="Duke patients 1..10")
    p.add_argument("--layout", choices=["retouch", "nnunet"], default="retouch")
    p.add_argument("--dataset-file", type=Path, default=None,
                   help="also write a dataset file for `segclr fit --set data.dataset=...` (RETOUCH layout): "
                        "the first case as labeled source_train, the others as test")
    args = p.parse_args(argv)
    make_retouch_example(args.out, tuple(args.patients), args.layout)
    if args.dataset_file is not None:
        write_dataset_file(args.dataset_file, args.out)
    print(f"wrote {len(args.patients)} cases ({args.layout}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
