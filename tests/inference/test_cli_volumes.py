"""End to end on a RETOUCH-format folder made from the embedded data: fit -> predict .mhd -> evaluate -> export."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from segclr.cli import main
from segclr.io.volumes import read_volume

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--set", "data.crop_size=32", "--set", "data.batch_size=2", "--set", "data.input_height=64",
    "--set", "model.base_channels=4", "--set", "model.depth=2", "--set", "model.head_hidden=16",
    "--set", "model.embedding_dim=8", "--set", "trainer.progress_bar=false",
    "--set", "trainer.log_every_n_steps=1", "--set", "trainer.checkpoint_every_n_steps=1",
]


def _example_module():
    spec = importlib.util.spec_from_file_location("make_retouch_example", ROOT / "examples" / "make_retouch_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def retouch(tmp_path_factory):
    out = tmp_path_factory.mktemp("retouch") / "data"
    _example_module().make_retouch_example(out, patients=(9, 10))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sup"
    rc = main(["fit", "--config", str(ROOT / "configs" / "supervised.yaml"), "--out", str(out),
               "--set", "trainer.max_steps=2", *TINY])
    assert rc == 0
    return out / "model.safetensors"


def test_example_folder_is_retouch_layout(retouch):
    assert sorted(p.name for p in retouch.iterdir()) == ["spectralis_09", "spectralis_10"]
    oct_ = read_volume(retouch / "spectralis_09" / "oct.mhd")
    ref = read_volume(retouch / "spectralis_09" / "reference.mhd")
    assert oct_.shape == ref.shape == (11, 496, 576) and oct_.array.dtype == np.uint8
    assert oct_.spacing_mm == pytest.approx((0.12, 0.00387, 0.0113)) and set(np.unique(ref.array)) == {0, 1}


def test_fit_writes_a_model_card(model):
    card = (model.parent / "model_card.md").read_text()
    assert "`1`: fluid" in card and "Labeled domain: spectralis" in card
    assert json.loads((model.parent / "model_card.json").read_text())["preprocessing"]["input_height"] == 64


def test_predict_evaluate_export_on_retouch_folder(model, retouch, tmp_path, capsys):
    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(model), "--input", str(retouch), "--output", str(pred),
                 "--batch-size", "4"]) == 0
    assert sorted(p.name for p in pred.iterdir()) == ["fluid_volumes.csv", "spectralis_09.mhd", "spectralis_09.raw",
                                                      "spectralis_10.mhd", "spectralis_10.raw"]
    for case in ("spectralis_09", "spectralis_10"):
        assert read_volume(pred / f"{case}.mhd").same_geometry(read_volume(retouch / case / "oct.mhd"))
    rows = list(csv.DictReader((pred / "fluid_volumes.csv").open()))
    assert [r["case"] for r in rows] == ["spectralis_09", "spectralis_10"] and "fluid_nl" in rows[0]
    assert "fluid nl" in capsys.readouterr().out
    # existing outputs are refused, naming one
    assert main(["predict", "--checkpoint", str(model), "--input", str(retouch), "--output", str(pred)]) == 2
    assert "spectralis_09.mhd: output exists" in capsys.readouterr().err

    summary = tmp_path / "summary.json"
    assert main(["evaluate", "--pred", str(pred), "--ref", str(retouch), "--out", str(summary)]) == 0
    s = json.loads(summary.read_text())
    assert len(s["metric_per_case"]) == 2 and set(s["mean"]) == {"1", "2", "3"}
    assert {"Dice", "Dice_slice_mean", "HD95_mm", "pooled_Dice"} <= set(s["mean"]["1"])
    assert "HD95 mm" in capsys.readouterr().out

    # the model scored directly on the dataset (labels from reference.mhd) agrees with predict + evaluate
    direct = tmp_path / "direct.json"
    assert main(["evaluate", "--checkpoint", str(model), "--images", str(retouch), "--out", str(direct)]) == 0
    d = json.loads(direct.read_text())
    assert d["mean"]["1"]["pooled_Dice"] == pytest.approx(s["mean"]["1"]["pooled_Dice"], nan_ok=True)

    exported = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(model), "--format", "torchscript", "--out", str(exported)]) == 0
    assert exported.is_file()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["predict", "--checkpoint", "{ckpt}", "--input", "{tmp}/lies/oct.mhd", "--output", "{tmp}/o"], "oct.raw"),
        (["predict", "--checkpoint", "{ckpt}", "--input", "{tmp}/none.nii.gz", "--output", "{tmp}/o"], "none.nii.gz"),
        (["evaluate", "--pred", "{tmp}/o"], "--pred and --ref"),
        (["evaluate", "--pred", "{tmp}/lies", "--ref", "{tmp}/none.mhd"], "none.mhd"),
        (["evaluate", "--pred", "{tmp}/o", "--ref", "{tmp}/lies", "--labels", "1:IRF"], "1:IRF"),
        (["export", "--checkpoint", "{tmp}/none.safetensors", "--format", "onnx"], "none.safetensors"),
    ],
)
def test_bad_volume_input_exits_2_naming_the_file(argv, needle, model, tmp_path, capsys):
    (tmp_path / "lies").mkdir()
    (tmp_path / "lies" / "oct.raw").write_bytes(bytes(100))
    (tmp_path / "lies" / "oct.mhd").write_text("NDims = 3\nDimSize = 10 10 10\nElementType = MET_UCHAR\n"
                                               "ElementDataFile = oct.raw\n")
    argv = [a.format(tmp=tmp_path, ckpt=model) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_mixed_bscan_folder_with_jpeg_then_evaluate_a_subset_by_name(model, tmp_path, capsys):
    from PIL import Image

    from segclr.data.domains import embedded_data_dir
    from segclr.io.images import reset_notes

    reset_notes()
    src = embedded_data_dir()
    names = sorted(p.name for p in (src / "images").glob("subject09_*.png"))[:3]
    (tmp_path / "in").mkdir()
    (tmp_path / "ref").mkdir()
    for i, name in enumerate(names):
        image = Image.open(src / "images" / name)
        image.save(tmp_path / "in" / (name if i else name.replace(".png", ".jpg")), quality=95)  # one JPEG
        Image.open(src / "masks" / name).save(tmp_path / "ref" / name)
    assert main(["predict", "--checkpoint", str(model), "--input", str(tmp_path / "in"),
                 "--output", str(tmp_path / "pred")]) == 0
    out = capsys.readouterr()
    assert "wrote 3 masks" in out.out and out.err.count("JPEG B-scans are lossy") == 1   # read, not skipped
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == names
    (tmp_path / "pred" / names[0]).unlink()                    # score a subset of the references
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "s.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["unpaired"] == {"prediction_only": [], "reference_only": [names[0][:-4]]}
    assert s["slice_level"]["mean"]["1"]["n_slices"] == 2
    assert f"1 reference B-scan(s) without a prediction, not scored: {names[0][:-4]}" in capsys.readouterr().err
