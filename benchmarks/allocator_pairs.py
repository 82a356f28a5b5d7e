"""Paired timing of the ``segclr`` commands with glibc's default allocator and with kept freed memory.

Each pair runs the same command twice in fresh processes, once with ``SEGCLR_MALLOC=default`` (glibc's
defaults) and once as shipped (``segclr.inference.allocator.keep_freed_memory``), alternating which goes
first. Commands: ``segclr predict`` on the bench's 49-slice volume of real Duke B-scans (packaged model),
and short ``segclr fit`` runs of the supervised and SegCLR UDA configs ("trained N steps in X s" from
fit's own line). Run it on a quiet machine (docs/performance.md, 2026-11-28):

    python benchmarks/allocator_pairs.py [--pairs 3] [--predict-pairs 6]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FITS = (("configs/supervised.yaml", 150), ("configs/segclr_uda.yaml", 60))


def _env(kept: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SEGCLR_MALLOC"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    if not kept:
        env["SEGCLR_MALLOC"] = "default"
    return env


def fit_seconds(cfg: str, steps: int, out: Path, kept: bool) -> float:
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run([sys.executable, "-m", "segclr.cli", "fit", "--config", cfg, "--out", str(out),
                        "--set", f"trainer.max_steps={steps}", "--set", "trainer.progress_bar=false",
                        "--set", "trainer.checkpoint_every_n_steps=100000"],
                       env=_env(kept), capture_output=True, text=True, cwd=ROOT)
    m = re.search(r"trained \d+ steps in ([\d.]+) s", p.stdout + p.stderr)
    if p.returncode != 0 or not m:
        raise SystemExit(f"fit failed ({p.returncode}):\n{(p.stdout + p.stderr)[-2000:]}")
    return float(m.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3, help="pairs per fit config (default: %(default)s)")
    ap.add_argument("--predict-pairs", type=int, default=6, help="pairs of segclr predict (default: %(default)s)")
    args = ap.parse_args(argv)
    from segclr.bench.cli_volume import _timed, real_volume

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vol = Path(tmp) / "volume49.mha"
        real_volume(vol)
        cmd = [sys.executable, "-m", "segclr.cli", "predict", "--input", str(vol), "--output",
               str(Path(tmp) / "pred.mha"), "--overwrite"]
        peaks: dict[bool, list[float]] = {}
        _timed(cmd, _env(True))  # warm-up
        jobs = [("segclr predict, 49-slice volume", args.predict_pairs,
                 lambda kept: _timed(cmd, _env(kept), peaks.setdefault(kept, [])))]
        for cfg, steps in FITS:
            jobs.append((f"segclr fit {cfg}, {steps} steps", args.pairs,
                         lambda kept, cfg=cfg, steps=steps: fit_seconds(cfg, steps, Path(tmp) / "fit", kept)))
        for name, n, run in jobs:
            if n < 1:
                continue
            pairs = []
            for r in range(n):
                order = (False, True) if r % 2 == 0 else (True, False)
                t = {kept: run(kept) for kept in order}
                pairs.append((t[False], t[True]))
                print(f"{name}: default {t[False]:.2f} s, kept {t[True]:.2f} s", flush=True)
            rows.append((name, pairs))
    print("\n| command | pairs (default / kept, s) | median default | median kept | kept faster |")
    print("|---|---|---|---|---|")
    for name, pairs in rows:
        d, k = [p[0] for p in pairs], [p[1] for p in pairs]
        print(f"| {name} | {', '.join(f'{a:.2f}/{b:.2f}' for a, b in pairs)} | {statistics.median(d):.2f} | "
              f"{statistics.median(k):.2f} | {sum(b < a for a, b in pairs)} of {len(pairs)} |")
    if peaks:
        print(f"\nsegclr predict peak resident memory, median: default {statistics.median(peaks[False]):.0f} MB, "
              f"kept {statistics.median(peaks[True]):.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
