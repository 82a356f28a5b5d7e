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


# --- a resume keeps the run's config ----------------------------------------------------------

def _tiny_cli(max_steps: int) -> list[str]:
    """TINY for the supervised config: its own mode, ``max_steps`` steps (last two words)."""
    keep = [v for v in TINY[1::2] if not v.startswith(("trainer.max_steps", "objective.mode"))]
    return [w for v in keep for w in ("--set", v)] + ["--set", f"trainer.max_steps={max_steps}"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from segclr.cli import main

    out = tmp_path_factory.mktemp("resume") / "sup"
    assert main(["fit", "--config", str(CONFIGS / "supervised.yaml"), "--out", str(out), *_tiny_cli(2)]) == 0
    return out


def _snapshot(out: Path) -> tuple[str, bytes]:
    return (out / "config.yaml").read_text(), (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize("extra, needle", [
    ([], "already trained its 2 steps"),                                   # nothing left to train
    (["--config", str(CONFIGS / "supervised.yaml"), *_tiny_cli(2)[:-2]], "trainer.max_steps"),  # file's 1500, not asked
    (["--set", "objective.lambda_sup=5", "--set", "trainer.max_steps=3"], "objective.lambda_sup"),
    (["--set", "data.crop_size=64", "--set", "trainer.max_steps=3"], "data.crop_size"),
    (["--set", "trainer.max_steps=1"], "cannot shorten"),
])
def test_resume_refuses_a_changed_config(finished_run, extra, needle, capsys):
    from segclr.cli import main

    before = _snapshot(finished_run)
    assert main(["fit", "--out", str(finished_run), "--resume", *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1
    assert _snapshot(finished_run) == before  # nothing rewritten


def test_resume_uses_the_runs_config_and_may_extend_max_steps(finished_run, tmp_path):
    import shutil

    import yaml

    from segclr.cli import main
    from segclr.io.bundle import load_bundle

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # no --config: the run's own config.yaml (tiny model, 2 -> 4 steps); --set only the extension
    assert main(["fit", "--out", str(run), "--resume", "--set", "trainer.max_steps=4"]) == 0
    now = yaml.safe_load((run / "config.yaml").read_text())
    assert now["trainer"].pop("max_steps") == 4
    saved["trainer"].pop("max_steps")
    assert now == saved
    assert load_bundle(run / "model.safetensors")[1]["training"]["steps"] == 4


def test_extending_a_run_stretches_the_cosine_schedule():
    import math
    from types import SimpleNamespace

    from segclr.training.trainer import _StretchSchedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2, eta_min=0.05)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # end of the original schedule
    trainer = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=sched)], max_steps=10)
    _StretchSchedule().on_train_start(trainer, None)
    closed = [0.05 + 0.95 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(2, 11)]
    got = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        opt.step()
        sched.step()
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx(closed)


def test_resume_finishes_a_run_killed_before_its_bundle(finished_run, tmp_path):
    import shutil

    from segclr.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "model.safetensors").unlink()  # killed after the last checkpoint, before the bundle
    assert main(["fit", "--out", str(run), "--resume"]) == 0
    assert (run / "model.safetensors").is_file()


def _predating(run: Path, section: str, key: str) -> None:
    """Make ``run``'s config.yaml look written before ``section.key`` existed."""
    import yaml

    values = yaml.safe_load((run / "config.yaml").read_text())
    del values[section][key]
    (run / "config.yaml").write_text(yaml.safe_dump(values, sort_keys=False))


def test_resume_of_a_run_older_than_a_key_keeps_its_behaviour(finished_run, tmp_path):
    """A run saved before data.fluid_crop_by existed sampled per pixel: resumed, it still does,
    although the default is now component (config/history.py ADDED_KEYS)."""
    import shutil

    import yaml

    from segclr.cli import main
    from segclr.config import RunConfig
    from segclr.io.bundle import load_bundle

    assert RunConfig().data.fluid_crop_by == "component"  # else this test checks nothing
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _predating(run, "data", "fluid_crop_by")
    assert main(["fit", "--out", str(run), "--resume", "--set", "trainer.max_steps=3"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["fluid_crop_by"] == "pixel"
    assert load_bundle(run / "model.safetensors")[1]["training"]["config"]["data"]["fluid_crop_by"] == "pixel"
    # naming the run's own config.yaml with --config is the same as leaving it out
    _predating(run, "data", "fluid_crop_by")
    assert main(["fit", "--out", str(run), "--resume", "--config", str(run / "config.yaml"),
                 "--set", "trainer.max_steps=4"]) == 0
    assert load_bundle(run / "model.safetensors")[1]["training"]["steps"] == 4


def test_resume_with_a_config_that_takes_todays_default_is_refused(finished_run, tmp_path, capsys):
    """--config names a file whose missing key means today's default; the old run's is the neutral one."""
    import shutil

    from segclr.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _predating(run, "data", "fluid_crop_by")
    before = _snapshot(run)
    extra = ["--config", str(CONFIGS / "supervised.yaml"), *_tiny_cli(3)]
    assert main(["fit", "--out", str(run), "--resume", *extra]) == 2
    err = capsys.readouterr().err
    assert "data.fluid_crop_by from 'pixel' to 'component'" in err and "Traceback" not in err
    assert "saved before data.fluid_crop_by existed" in err and "--set data.fluid_crop_by=pixel" in err
    assert _snapshot(run) == before
