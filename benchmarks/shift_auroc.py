"""How well does the domain-shift score separate source from simulated target B-scans?

    python benchmarks/shift_auroc.py --checkpoint segclr-demo/supervised/model.safetensors \
        [--out docs/shift.md] [--seed 0]

Scores the test patients (9-10) of every benchmark domain with the bundle's stored training
statistics and prints, per simulated device, the AUROC of "target scores higher than
Spectralis" over B-scans, plus the mean score per domain and the fraction flagged.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from segclr.data.domains import DomainBank, all_domain_names
from segclr.inference.predict import Predictor
from segclr.inference.shift import auroc
from segclr.io.atomic import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help="Markdown file to write the table to")
    ap.add_argument("--seed", type=int, default=0, help="simulation seed (default: %(default)s)")
    args = ap.parse_args()

    predictor = Predictor(args.checkpoint)
    if predictor.shift_stats is None:
        raise SystemExit(f"{args.checkpoint}: bundle has no shift statistics (trained before they were stored)")
    bank = DomainBank(args.seed)
    threshold = predictor.shift_threshold
    scores = {}
    for d in all_domain_names():
        images = np.stack([img for v in bank.volumes(d, "test") for img in v.images])
        scores[d] = predictor.shift_scores(images)
    src = scores["spectralis"]
    lines = [
        f"Shift scores of `{args.checkpoint}` (trained on {predictor.meta['training']['labeled_domain']} "
        f"+ unlabeled {predictor.meta['training']['unlabeled_domains']}), test patients 9-10, "
        f"simulation seed {args.seed}, flag threshold {threshold:.2f}.",
        "",
        "| domain | B-scans | mean score | flagged | AUROC vs spectralis |",
        "|---|---|---|---|---|",
    ]
    for d, s in scores.items():
        a = "-" if d == "spectralis" else f"{auroc(src, s):.3f}"
        lines.append(f"| {d} | {len(s)} | {np.mean(s):.2f} | {np.mean(s > threshold):.0%} | {a} |")
    lines += ["", f"Command: `python benchmarks/shift_auroc.py --checkpoint {args.checkpoint}`; "
                  f"machine: {platform.machine()} CPU."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
