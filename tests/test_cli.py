"""End to end through the command line: fit -> evaluate -> predict, resume, simulate, bad input."""

from __future__ import annotations

import csv
import json
import os
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
    rc = main(["fit", "--config", str(CONFIGS / "segclr_uda.yaml"), "--out", str(out), "--set", "trainer.max_steps=3",
               *TINY])
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
    for name in ("config.yaml", "model.safetensors", "checkpoints/last.ckpt", "logs/metrics.csv",
                 "training_curves.png"):
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
    m = [c["metrics"]["1"] for c in summary["metric_per_case"]]
    ratio = sum(c["n_pred"] for c in m) / sum(c["n_ref"] for c in m)
    assert summary["mean"]["1"]["area_ratio"] == pytest.approx(ratio)
    printed = capsys.readouterr().out
    assert "pooled Dice" in printed and "area pred/ref" in printed and f"{ratio:.3f}" in printed


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


# --- issue 17: a newcomer's first hour ------------------------------------------------------------

def test_bundle_threshold_is_calibrated_leaving_one_volume_out(run_dir):
    from segclr.inference.predict import Predictor

    n_scans, n_volumes = Predictor(run_dir / "model.safetensors").shift_stats["calibration"].tolist()
    assert n_volumes == 8 and n_scans == 88  # Spectralis 1-5 (labeled and unlabeled: once) + cirrus_like 6-8


def test_every_output_file_is_readable_by_others(tmp_path, scans, capsys):
    """Files 0644 and folders 0755 under umask 022: model.safetensors included (safetensors makes 0600)."""
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert main(["fit", "--config", str(CONFIGS / "supervised.yaml"), "--out", str(run), *TINY,
                     "--set", "trainer.max_steps=1"]) == 0
        bundle = run / "model.safetensors"
        assert main(["predict", "--checkpoint", str(bundle), "--input", str(scans / "images"),
                     "--output", str(tmp_path / "pred")]) == 0
        assert main(["evaluate", "--checkpoint", str(bundle), "--images", str(scans / "images"), "--masks",
                     str(scans / "masks"), "--out", str(tmp_path / "eval" / "summary.json")]) == 0
        assert main(["export", "--checkpoint", str(bundle), "--format", "torchscript"]) == 0
        assert main(["simulate", "--device", "spectralis", "--patients", "9", "--out", str(tmp_path / "sim")]) == 0
    finally:
        os.umask(old)
    paths = [p for p in tmp_path.rglob("*") if "scans" not in p.parts]
    assert bundle in paths and (run / "model.pt") in paths and (run / "checkpoints" / "last.ckpt") in paths
    wrong = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in paths
             if p.stat().st_mode & 0o777 != (0o755 if p.is_dir() else 0o644)}
    assert not wrong


def test_checkpoint_may_be_the_run_folder_but_not_a_ckpt(run_dir, scans, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(run_dir), "--input", str(scans / "images"),
                 "--output", str(tmp_path / "pred")]) == 0
    capsys.readouterr()
    for ckpt in (run_dir / "checkpoints" / "last.ckpt",):
        assert main(["predict", "--checkpoint", str(ckpt), "--input", str(scans / "images"),
                     "--output", str(tmp_path / "pred2")]) == 2
        err = capsys.readouterr().err
        assert "Lightning training checkpoint" in err and str(run_dir / "model.safetensors") in err
    assert not (tmp_path / "pred2").exists()


@pytest.mark.parametrize("argv, needles", [
    (["--set", "trainer.max_step=3"], ["--set trainer.max_step=3 (command line)", "did you mean 'trainer.max_steps'"]),
    (["--set", "max_steps=3"], ["did you mean --set trainer.max_steps=3"]),
    (["--set", "trainer.max_steps", "3"], ["write --set trainer.max_steps=3"]),
])
def test_set_mistakes_get_the_fix(argv, needles, tmp_path, capsys):
    try:
        rc = main(["fit", "--config", str(CONFIGS / "supervised.yaml"), "--out", str(tmp_path / "r"), *argv])
    except SystemExit as stop:  # a stray word stops argparse, which exits like any usage error
        rc = stop.code
    assert rc == 2
    err = capsys.readouterr().err
    assert all(n in err for n in needles), err
    assert "supervised.yaml" not in err  # the command line is blamed, not the file
    assert not (tmp_path / "r").exists()


def test_help_texts_agree_with_the_readme(capsys):
    from segclr.config import MODES

    for verb in ("demo", "fit", "predict"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # independent of the terminal width
    assert all(m in out for m in MODES)
    assert "--checkpoint CHECKPOINT model.safetensors written by fit" in out  # predict's, too
    readme = (CONFIGS.parent / "README.md").read_text()
    import re

    minutes = re.search(r"`make demo` takes about (\d+) minutes on 2 CPU cores", readme)
    assert minutes, "the README states the demo's time"
    assert f"about {minutes.group(1)} min" in out  # demo --help says the same
    measured = re.search(r"\*\*(\d+(?:\.\d)?) min wall time\*\*", readme)
    assert measured and abs(float(measured.group(1)) - int(minutes.group(1))) <= 1  # and matches the measurement


def test_simulate_one_split_and_evaluate_warns_about_training_patients(run_dir, tmp_path, capsys):
    test_only, everything = tmp_path / "test", tmp_path / "all"
    assert main(["simulate", "--device", "spectralis", "--patients", "9,10", "--out", str(test_only)]) == 0
    rows = list(csv.DictReader((test_only / "index.csv").open()))
    assert len(rows) == 22 and {r["split"] for r in rows} == {"test"}
    assert main(["simulate", "--device", "spectralis", "--patients", "1,9", "--out", str(everything)]) == 0
    capsys.readouterr()
    bundle = str(run_dir / "model.safetensors")
    assert main(["evaluate", "--checkpoint", bundle, "--images", str(test_only / "images"),
                 "--masks", str(test_only / "masks")]) == 0
    assert "training patients" not in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", bundle, "--images", str(everything / "images"),
                 "--masks", str(everything / "masks")]) == 0
    assert "11 of 22 B-scans" in capsys.readouterr().err


def test_evaluate_a_dataset_file_scores_its_test_role(run_dir, tmp_path, capsys):
    src = embedded_data_dir()
    for patient, role in ((1, "source_train"), (9, "test"), (10, "test")):
        for sub in ("images", "masks"):
            folder = tmp_path / f"p{patient}_{sub}"
            folder.mkdir()
            for f in sorted((src / sub).glob(f"subject{patient:02d}_*.png")):
                shutil.copy(f, folder / f.name)
    (tmp_path / "dataset.yaml").write_text(
        "domains:\n  spectralis:\n"
        "    - {image: p1_images, label: p1_masks, role: source_train}\n"
        "    - {image: p9_images, label: p9_masks, role: test}\n"
        "    - {image: p10_images, role: test}\n")  # unlabeled: skipped and counted
    out = tmp_path / "summary.json"
    assert main(["evaluate", "--checkpoint", str(run_dir), "--images", str(tmp_path / "dataset.yaml"),
                 "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["role"] == "test" and len(summary["metric_per_case"]) == 11
    assert all("#" in c["reference_file"] and "p9_images" in c["reference_file"] for c in summary["metric_per_case"])
    assert summary["skipped_unlabeled_volumes"] == 1
    printed = capsys.readouterr().out
    assert "held-out volumes only" in printed and "area pred/ref" in printed
    assert f"{summary['mean']['1']['area_ratio']:.3f}" in printed.splitlines()[2]  # on the domain's line
    assert main(["evaluate", "--checkpoint", str(run_dir), "--images", str(tmp_path / "dataset.yaml"),
                 "--role", "source_train"]) == 0
    assert "NOT held out" in capsys.readouterr().out


def test_training_prints_plain_progress_lines(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", "--config", str(CONFIGS / "supervised.yaml"), "--out", str(out), *TINY,
                 "--set", "trainer.max_steps=2", "--set", "trainer.progress_bar=true"]) == 0  # not a terminal
    captured = capsys.readouterr()
    assert "[segclr] step 1/2: " in captured.out and "[segclr] step 2/2: " in captured.out
    assert "\r" not in captured.out + captured.err
