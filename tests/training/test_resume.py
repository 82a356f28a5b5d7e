"""Kill -9 a training run after its first checkpoint, resume it, get the uninterrupted weights."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = [
    "--set", "data.crop_size=32", "--set", "data.batch_size=2", "--set", "data.input_height=64",
    "--set", "model.base_channels=4", "--set", "model.depth=2", "--set", "model.head_hidden=16",
    "--set", "model.embedding_dim=8", "--set", "trainer.progress_bar=false", "--set", "trainer.log_every_n_steps=1",
    "--set", "trainer.checkpoint_every_n_steps=5", "--set", "trainer.max_steps=40",
    # real Spectralis only (no simulated target): fast start-up, same code path
    "--set", "objective.mode=segclr_dg",
]


def _fit(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "segclr.cli", "fit", "--config", str(CONFIGS / "segclr_uda.yaml"),
            "--out", str(out), *TINY, *extra]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_fit(full), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_fit(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()
    # never a half-written file under a final name: every checkpoint present loads
    for ckpt in (killed / "checkpoints").glob("*.ckpt"):
        torch.load(ckpt, weights_only=True)
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 5 <= killed_at < 40

    res = subprocess.run(_fit(killed, "--resume"), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = load_file(full / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"weights differ in {k}")
    steps = [int(r["step"]) for r in csv.DictReader((killed / "logs" / "metrics.csv").open())]
    assert min(steps) == 0 and max(steps) == 39  # history kept across the resume
