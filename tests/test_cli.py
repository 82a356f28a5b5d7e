"""End to end through the command line: fit -> evaluate -> predict, resume, simulate, bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segclr.cli import main
from segclr.data.domains import embedded_data_dir

TINY = [
    "--set", "data.crop_size=32", "--set", "data.batch_size=2", "--set", "data.input_height=64",
    "--set", "model.base_channels=4", "--set", "model.depth=2", "--set", "model.head_hidden=16",
    "--set", "model.embedding_dim=8", "--set", "trainer.progress_bar=false",
    "--set", "trainer.log_every_n_steps=1", "--set", "trainer.checkpoint_every_n_steps=1",
]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "uda"
    rc = main(["fit", "--config", str(CONFIGS / "segclr_uda.yaml"), "--out", str(out), "--set", "trainer.max_steps=3", *TINY])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Three full-size (496 x 768, uncropped) embedded B-scans with their masks."""
    root = tmp_path_factory.mktemp("scans")
    src = embedded_data_dir()
    for sub in ("images", "masks"):
        (root / sub).mkdir()
        for name in ("subject09_slice04.png", "subject09_slice05.png", "subject10_slice00.png"):
            shutil.copy(src / sub / name, root / sub / name)
    return root


def test_fit_writes_run_folder(run_dir):
    for name in ("config.yaml", "model.safetensors", "checkpoints/last.ckpt", "logs/metrics.csv", "training_curves.png"):
        assert (run_dir / name).is_file(), name
    rows = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    assert {"loss/sup", "loss/con_spectralis", "loss/con_cirrus_like"} <= set(rows[0])
    assert "mode: segclr_uda" in (run_dir / "config.yaml").read_text()


def test_evaluate_writes_nnunet_like_summary(run_dir, scans, tmp_path, capsys):
    out = tmp_path / "summary.json"
    rc = main(["evaluate", "--checkpoint", str(run_dir / "model.safetensors"), "--images", str(scans / "images"),
               "--masks", str(scans / "masks"), "--out", str(out)])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert len(summary["metric_per_case"]) == 3
    assert set(summary["mean"]) == {"1"} and summary["mean"]["1"]["name"] == "fluid"
    assert 0.0 <= summary["mean"]["1"]["pooled_Dice"] <= 1.0
    assert "pooled Dice" in capsys.readouterr().out


def test_predict_writes_masks_at_input_size(run_dir, scans, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run_dir / "model.safetensors"), "--input", str(scans / "images"),
                 "--output", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(p.name for p in (scans / "images").iterdir())
    mask = np.asarray(Image.open(out / files[0]))
    assert mask.shape == (496, 768) and set(np.unique(mask)) <= {0, 1}
    # refuses to overwrite without --overwrite, and says so
    assert main(["predict", "--checkpoint", str(run_dir / "model.safetensors"), "--input", str(scans / "images"),
                 "--output", str(out)]) == 2
    assert main(["predict", "--checkpoint", str(run_dir / "model.safetensors"), "--input", str(scans / "images"),
                 "--output", str(out), "--overwrite"]) == 0


def test_resume_continues_from_last_checkpoint(tmp_path):
    out = tmp_path / "sup"
    base = ["fit", "--config", str(CONFIGS / "supervised.yaml"), "--out", str(out), *TINY]
    assert main([*base, "--set", "trainer.max_steps=2"]) == 0
    assert main([*base, "--set", "trainer.max_steps=2"]) == 2  # finished run: refuses to overwrite
    assert main([*base, "--set", "trainer.max_steps=4", "--resume"]) == 0
    steps = [int(r["step"]) for r in csv.DictReader((out / "logs" / "metrics.csv").open())]
    assert max(steps) == 3  # steps 0..3: two more steps after the resumed two
    from segclr.io.bundle import load_bundle

    assert load_bundle(out / "model.safetensors")[1]["training"]["steps"] == 4


def test_simulate_writes_dataset_layout(tmp_path):
    out = tmp_path / "topcon"
    assert main(["simulate", "--device", "topcon-like", "--out", str(out)]) == 0
    assert len(list((out / "images").glob("*.png"))) == 110
    assert len(list((out / "masks").glob("*.png"))) == 110
    rows = list(csv.DictReader((out / "index.csv").open()))
    assert {r["split"] for r in rows} == {"source_train", "target_train", "test"}
    assert main(["simulate", "--device", "topcon-like", "--out", str(out)]) == 2  # not empty


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["simulate", "--device", "nikon", "--out", "{tmp}/x"], "nikon"),
        (["fit", "--config", "{tmp}/nope.yaml", "--out", "{tmp}/r"], "nope.yaml"),
        (["fit", "--out", "{tmp}/r", "--set", "trainer.bogus=1"], "trainer.bogus"),
        (["evaluate", "--checkpoint", "{tmp}/none.safetensors", "--images", "{tmp}", "--masks", "{tmp}"],
         "none.safetensors"),
        (["evaluate", "--checkpoint", "{tmp}/fake.safetensors", "--images", "{tmp}", "--masks", "{tmp}"],
         "fake.safetensors"),
        (["predict", "--checkpoint", "{ckpt}", "--input", "{tmp}/empty", "--output", "{tmp}/o"], "empty"),
    ],
)
def test_bad_input_exits_2_naming_the_file(argv, needle, tmp_path, run_dir, capsys):
    (tmp_path / "fake.safetensors").write_bytes(b"not a model at all")
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path, ckpt=run_dir / "model.safetensors") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()


def test_console_script_help_and_error_exit_code():
    exe = shutil.which("segclr") or f"{sys.executable} -m segclr.cli"
    res = subprocess.run(exe.split() + ["--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "demo" in res.stdout and "simulate" in res.stdout
    res = subprocess.run(exe.split() + ["simulate", "--device", "nope", "--out", "/tmp/never"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "nope" in res.stderr
