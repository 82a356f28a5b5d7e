"""What a user waits for: ``segclr predict`` on a 49-slice volume of real B-scans, start-up included.

The volume is the first 49 embedded Duke Spectralis B-scans (patients 1-5, 496 x 576 after the crop to the
annotated columns; real fluid, so the post-processing does real work), written as a MetaImage with the Duke
spacing. The model is the packaged default (what ``segclr predict`` uses without ``--checkpoint``). Each run
is a fresh interpreter, timed from launch to exit. The start-up is a fresh interpreter that imports what
``segclr predict`` imports before it reads anything (``segclr --version`` would not: the CLI imports torch
lazily), so "beyond start-up" is the difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segclr.bench.common import log, median

N_SLICES = 49
# Duke DME (Spectralis): 3.87 um per row, 11.3 um per A-scan (docs/geometry.md); the B-scan distance is a
# nominal 6 mm / 49 B-scans, enough for the nanoliter column (it does not change the timing)
DUKE_SPACING_MM = (6.0 / N_SLICES, 3.87e-3, 11.3e-3)


def real_volume(path: Path) -> tuple[int, int, int]:
    """Write the 49-slice volume of embedded B-scans to ``path`` (.mha); returns its shape."""
    from segclr.data.domains import load_spectralis
    from segclr.io.volumes import Volume, write_volume

    images = [img for v in load_spectralis(patients=(1, 2, 3, 4, 5)) for img in v.images][:N_SLICES]
    if len(images) < N_SLICES:
        raise RuntimeError(f"the embedded data holds {len(images)} B-scans of patients 1-5, fewer than {N_SLICES}")
    array = np.stack([np.clip(np.round(img * 255), 0, 255).astype(np.uint8) for img in images])
    write_volume(path, Volume(array, DUKE_SPACING_MM))
    return tuple(array.shape)


STARTUP = "import segclr.cli, segclr.inference.predict, segclr.inference.volumes"


def _timed(cmd: list[str], env: dict, peaks_mb: list[float] | None = None) -> float:
    """Wall seconds of ``cmd`` in a fresh process; its peak resident memory (MB) goes to ``peaks_mb`` if given."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{tail}")
    if peaks_mb is not None:
        peaks_mb.append(usage.ru_maxrss / 1024)
    return wall


def cli_volume_times(reps: int, device: str = "cpu") -> dict:
    """Median wall seconds of the start-up imports and of ``segclr predict`` (with and without post-processing)."""
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CLI picks a GPU when it sees one
    cli = [sys.executable, "-m", "segclr.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        vol = Path(tmp) / "volume49.mha"
        shape = real_volume(vol)
        runs = {"startup": [sys.executable, "-c", STARTUP],
                "predict": cli + ["predict", "--input", str(vol), "--output", str(Path(tmp) / "pred.mha"),
                                  "--overwrite"],
                "predict_no_postprocess": cli + ["predict", "--input", str(vol), "--output",
                                                 str(Path(tmp) / "raw.mha"), "--overwrite", "--no-postprocess"]}
        times: dict[str, list[float]] = {k: [] for k in runs}
        _timed(runs["predict"], env)  # warm-up: file cache, the packaged model's first read
        for r in range(reps):
            for k in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                times[k].append(_timed(runs[k], env))
            log(f"CLI rep {r + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    med = {k: median(v) for k, v in times.items()}
    return {"shape": list(shape), "samples_s": times, "startup_s": med["startup"], "predict_s": med["predict"],
            "predict_no_postprocess_s": med["predict_no_postprocess"],
            "beyond_startup_s": med["predict"] - med["startup"],
            "command": "segclr predict --input volume49.mha --output pred.mha (packaged model)"}
