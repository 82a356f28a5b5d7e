"""Train a study's unfinished cells several at a time on one GPU, until a deadline (issue 12).

    python benchmarks/gpu_pool.py configs/experiments/r2_realistic_cpu.yaml \\
        --report-dir docs/results/r2_realistic_cpu --workers 12 --deadline-s 330 --scratch /tmp/pool

Each cell runs as its own ``segclr experiment GRID --methods METHOD --seeds SEED`` process, so a crash
or a kill costs one cell; the finished cell's record lands in the grid's cells directory (the one the
CPU runs commit to), labelled with the GPU that trained it (cells.machine_description). Cells start in
the grid's seed-major order, with ``--first`` rows moved ahead; none starts when less time is left than
the slowest cell so far took (``--min-cell-s`` before any has finished), and at the deadline the
running ones are stopped (their cells stay not done). A small GPU network leaves the GPU mostly idle
in one process (Python and the data path set the pace), which is why several run at once.

Prints one line per start and finish and a closing summary; exits 0 even when cells failed (their
logs are under --scratch/logs), since a GPU session is one shot and its finished cells still count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path


def todo_cells(spec_path: str, report_dir: str, first: list[str],
               only: list[str] | None = None) -> tuple[Path, list[tuple[str, int]]]:
    """The grid's cells directory and the (method, seed) of every cell not yet done there, in run order
    with ``first`` rows ahead; with ``only``, just the rows that match one of those patterns."""
    from segclr.experiment.runner import default_cells_dir, expand_cells, is_done, load_spec

    spec = load_spec(spec_path)
    cells_dir = default_cells_dir(spec, Path(report_dir), Path(report_dir))
    todo = [c for c in expand_cells(spec) if not is_done(cells_dir, c)
            and (not only or any(fnmatch(c.method, p) for p in only))]
    if len({c.target for c in todo}) > 1:
        raise SystemExit(f"{spec_path}: several target devices; this pool schedules one (--methods/--seeds only)")
    ahead = [c for c in todo if any(fnmatch(c.method, p) for p in first)]
    return cells_dir, [(c.method, c.seed) for c in ahead + [c for c in todo if c not in ahead]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="experiment grid, e.g. configs/experiments/r2_realistic_cpu.yaml")
    ap.add_argument("--report-dir", required=True, help="the grid's report directory (its cells/ is written)")
    ap.add_argument("--workers", type=int, default=8, help="cells at once (default 8)")
    ap.add_argument("--deadline-s", type=float, required=True, help="stop everything after this many seconds")
    ap.add_argument("--min-cell-s", type=float, default=150.0,
                    help="assumed cell time before one has finished (default 150)")
    ap.add_argument("--first", nargs="*", default=[], help="rows (shell patterns) to start before the others")
    ap.add_argument("--only", nargs="*", default=[], help="run only these rows (shell patterns; default all)")
    ap.add_argument("--scratch", default="runs/gpu_pool", help="runs, per-cell reports and logs")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per cell process (default 1)")
    args = ap.parse_args(argv)

    start = time.monotonic()
    cells_dir, queue = todo_cells(args.spec, args.report_dir, args.first, args.only)
    scratch = Path(args.scratch)
    (scratch / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    print(f"[pool] {len(queue)} cells to do, {args.workers} at once, deadline {args.deadline_s:.0f} s", flush=True)
    running: dict[tuple[str, int], tuple[subprocess.Popen, float]] = {}
    took: list[float] = []
    done, failed, stopped = [], [], []
    while queue or running:
        now = time.monotonic() - start
        for key, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[key]
            (done if proc.returncode == 0 else failed).append(key)
            if proc.returncode == 0:
                took.append(now - t0)
            print(f"[pool] {now:6.0f} s  {key[0]} seed {key[1]}: "
                  f"{'done' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'} in {now - t0:.0f} s",
                  flush=True)
        if now >= args.deadline_s:
            for key, (proc, _) in running.items():
                proc.kill()
                proc.wait()
                stopped.append(key)
            running.clear()
            break
        need = max(took) if took else args.min_cell_s
        while queue and len(running) < args.workers and args.deadline_s - now >= need:
            method, seed = key = queue.pop(0)
            name = f"{method}__seed{seed}"
            cmd = [sys.executable, "-m", "segclr.cli", "experiment", args.spec, "--methods", method,
                   "--seeds", str(seed), "--out", str(scratch / "runs" / name),
                   "--report-dir", str(scratch / "reports" / name),
                   "--cells", str(cells_dir)]
            with open(scratch / "logs" / f"{name}.log", "w") as log:  # the child keeps its own handle
                running[key] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), now)
            print(f"[pool] {now:6.0f} s  start {method} seed {seed}", flush=True)
        if not running and queue:
            break  # not enough time left for another cell
        time.sleep(1.0)
    wall = time.monotonic() - start
    print(f"[pool] {len(done)} cells done, {len(failed)} failed, {len(stopped)} stopped at the deadline, "
          f"{len(queue)} not started; {wall:.0f} s; cell times {sorted(round(t) for t in took)}", flush=True)
    for key in failed:
        print(f"[pool] failed: {key[0]} seed {key[1]} (log {scratch / 'logs' / f'{key[0]}__seed{key[1]}.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
