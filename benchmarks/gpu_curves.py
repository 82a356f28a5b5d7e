"""Validation curves of a GPU session's runs, finished or stopped at the deadline (issue 10).

    python benchmarks/gpu_curves.py docs/results/gpu_session_2026-11-28/call{1,2}_runs.tgz \\
        --out docs/results/gpu_session_2026-11-28

``benchmarks/gpu_session.sh`` brings back each run's ``logs/metrics.csv`` (no weights). A run stopped
at the pool's deadline has no cell record, but its metrics hold the in-training validation scores
(``trainer.val_every_n_steps``: the raw network on the working grid, no post-processing, nnU-Net rule
per B-scan). This collects them, one row per run and validation step, into ``curves.csv`` and a
table (``curves.md``) of every run's scores at each validation step, with the last step it reached.
Lightning logs step ``k`` as ``k - 1``, and a score lands on the first logged row after it, so the
validation steps are exact when ``log_every_n_steps`` divides ``val_every_n_steps`` (10 and 500 here).
Runs that logged no validation score (no ``val_every_n_steps``) are left out. Since 2026-11-28 ``fit``
also rewrites ``val_curve.csv`` after each score, so later stopped runs keep that file as well.
A run that appears in several archives (stopped in one call, run again in the next) is labelled by
its archive (``call1``, ``call2``, ...).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tarfile
from pathlib import Path

from segclr.inference.volume_outputs import write_csv
from segclr.io.atomic import atomic_write_text


def read_archive(path: Path, call: str) -> list[dict]:
    """Every validation row of every ``metrics.csv`` in one ``runs.tgz``."""
    rows = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if not member.name.endswith("logs/metrics.csv"):
                continue
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            run = parts[parts.index("runs") + 1]  # pool_<grid>/runs/<method>__seed<k>/runs/...
            if "pretrain" in parts:  # a pretraining stage has its own curve
                run += " (pretrain)"
            text = tar.extractfile(member).read().decode()
            previous, last, mine = None, 0, []
            for r in csv.DictReader(io.StringIO(text)):
                if r.get("step"):
                    last = max(last, int(r["step"]) + 1)
                if not r.get("val/dice_pooled"):
                    continue
                # the logger repeats the last validation score on every later row; keep its first
                key = (r["val/dice_pooled"], r["val/dice_per_bscan"])
                if key == previous:
                    continue
                previous = key
                mine.append({"call": call, "run": run, "step": int(r["step"]) + 1,
                             "val_dice_pooled": float(r["val/dice_pooled"]),
                             "val_dice_per_bscan": float(r["val/dice_per_bscan"])})
            rows += [{**row, "last_step": last} for row in mine]  # the last step is known once the file is read
    return rows


def table(rows: list[dict]) -> str:
    steps = sorted({r["step"] for r in rows})
    runs = sorted({(r["call"], r["run"]) for r in rows}, key=lambda k: (k[1], k[0]))
    lines = ["| run | call | last step | " + " | ".join(f"step {s}" for s in steps) + " |",
             "|---|---|---|" + "---|" * len(steps)]
    for call, run in runs:
        mine = {r["step"]: r for r in rows if r["run"] == run and r["call"] == call}
        cells = [f"{mine[s]['val_dice_pooled']:.3f} / {mine[s]['val_dice_per_bscan']:.3f}" if s in mine else ""
                 for s in steps]
        last = next(iter(mine.values()))["last_step"]
        lines.append(f"| {run} | {call} | {last} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archives", nargs="+", type=Path, help="runs.tgz of each call, in call order")
    ap.add_argument("--out", type=Path, required=True, help="directory for curves.csv and curves.md")
    args = ap.parse_args(argv)
    rows = []
    for i, path in enumerate(args.archives, 1):
        if not path.is_file():
            print(f"error: {path}: no such archive", file=sys.stderr)
            return 2
        rows += read_archive(path, f"call{i}")
    if not rows:
        print("error: no validation scores in these archives (trainer.val_every_n_steps was 0?)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "curves.csv", rows)
    md = ("# In-training validation curves\n\n"
          "Pooled Dice / Dice per B-scan on the validation patients, raw network (no post-processing), "
          "scored every `trainer.val_every_n_steps` steps while training. Regenerate: "
          f"`python benchmarks/gpu_curves.py {' '.join(str(p) for p in args.archives)} --out {args.out}`.\n\n"
          + table(rows))
    atomic_write_text(args.out / "curves.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
