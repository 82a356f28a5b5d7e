"""benchmarks/ready_model.py's packaging step: the folder `segclr models` and `predict` read."""

import json
import shutil

from segclr.inference.packaged import default_model, list_models


def test_package_writes_a_default_model_that_the_package_lists(tiny_bundle, tmp_path, load_script):
    ready = load_script("benchmarks/ready_model.py")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(tiny_bundle, run / "model.safetensors")
    dice = {"spectralis": {"dice": 0.46, "pooled": 0.68, "n": 22, "n_dice": 16}}
    info = {"name": ready.NAME, "default": True, "status": ready.STATUS, "training_data": "Spectralis 1-5",
            "regenerate": "python benchmarks/ready_model.py", "train_s": ready._bundle_seconds(run)}
    dest = ready.package(run, tmp_path / "models" / ready.NAME, dice, info)
    assert sorted(p.name for p in dest.iterdir()) == ["model.safetensors", "model_card.json", "model_card.md",
                                                      "packaged.json"]
    assert (dest / "model.safetensors").read_bytes() == tiny_bundle.read_bytes()
    packaged = json.loads((dest / "packaged.json").read_text())
    assert (packaged["dice"] == dice and packaged["status"] == ready.STATUS
            and "research use" in packaged["notice"].lower())
    # the tiny bundle records no training seconds: None, not a made-up number
    assert packaged["train_s"] is None
    card = (dest / "model_card.md").read_text()
    assert (card.startswith(f"# {ready.NAME}: {ready.STATUS}\n")
            and "Regenerate: `python benchmarks/ready_model.py`" in card)
    metrics = json.loads((dest / "model_card.json").read_text())["metrics"]
    assert metrics["per_domain"]["spectralis"] == {"Dice": 0.46, "n_dice": 16, "pooled_Dice": 0.68, "n_bscans": 22}
    (model,) = list_models(tmp_path / "models")
    assert model.trained and model.default and default_model(tmp_path / "models").bundle == dest / "model.safetensors"


def test_bundle_seconds_reads_the_training_time_the_bundle_records(tmp_path, load_script):
    from segclr.io.bundle import save_bundle
    from segclr.models import UNet

    ready = load_script("benchmarks/ready_model.py")
    net = UNet(1, 3, 4, 2, "batch")
    meta = {"model": {"num_classes": 3, "base_channels": 4, "depth": 2, "norm": "batch", "dropout": 0.0},
            "preprocess": {"input_height": 32, "pad_multiple": 4}, "classes": ["background", "IRF", "SRF"],
            "training": {"mode": "supervised", "steps": 10, "seed": 0, "seconds": 1681.93}}
    save_bundle(tmp_path / "model.safetensors", net.state_dict(), meta)
    assert ready._bundle_seconds(tmp_path) == 1681.9
