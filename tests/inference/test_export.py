"""Export to TorchScript/ONNX reproduces the PyTorch output; model cards describe the bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segclr.inference.export import export_model, write_model_card
from segclr.inference.predict import Predictor
from segclr.io.images import InputError


def _bscan_batch(prep, n=2, width=52):
    torch.manual_seed(3)
    return torch.rand(n, 1, prep.input_height, width)


def test_torchscript_export_reproduces_pytorch(tiny_bundle, tmp_path):
    out = tmp_path / "model.pt"
    res = export_model(tiny_bundle, "torchscript", out)
    assert res.path == out and res.max_abs_diff <= 1e-4
    predictor = Predictor(tiny_bundle)
    x = _bscan_batch(predictor.prep)  # a size the export was neither traced nor checked with
    extra = {"segclr.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    with torch.no_grad():
        assert torch.allclose(loaded(x), predictor.net(x), atol=1e-4)
    meta = json.loads(extra["segclr.json"])
    assert json.loads(meta["classes"]) == ["background", "IRF", "SRF"]
    assert json.loads(meta["preprocess"]) == {"input_height": 32, "pad_multiple": 4}
    # a model card travels with an export written to another folder
    assert res.card == tmp_path / "model_card.md" and res.card.is_file()
    with pytest.raises(InputError, match=r"model\.pt: output exists"):
        export_model(tiny_bundle, "torchscript", out)


def test_onnx_export_reproduces_pytorch(tiny_bundle, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    res = export_model(tiny_bundle, "onnx", out)
    assert res.max_abs_diff <= 1e-4
    predictor = Predictor(tiny_bundle)
    x = _bscan_batch(predictor.prep, n=3, width=44)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"image": x.numpy()})
    with torch.no_grad():
        assert np.allclose(got, predictor.net(x).numpy(), atol=1e-4)
    props = session.get_modelmeta().custom_metadata_map
    assert json.loads(props["classes"]) == ["background", "IRF", "SRF"]


def test_export_errors_name_the_file(tiny_bundle, tmp_path):
    with pytest.raises(InputError, match="unknown export format"):
        export_model(tiny_bundle, "tflite")
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"fake\.safetensors"):
        export_model(fake, "torchscript", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_model_card_lists_classes_preprocessing_domains_and_metrics(tiny_bundle, tmp_path):
    card = write_model_card(tiny_bundle, tmp_path / "model_card.md")
    text = card.read_text()
    assert "`1`: IRF" in text and "`2`: SRF" in text and "to 32 rows" in text and "multiple of 4" in text
    assert "Labeled domain: spectralis" in text and "cirrus_like" in text and "None recorded" in text
    data = json.loads((tmp_path / "model_card.json").read_text())
    assert data["classes"] == {"0": "background", "1": "IRF", "2": "SRF"}
    assert data["training"]["domains"] == {"labeled": "spectralis", "unlabeled": ["cirrus_like"]}
    assert "3.87 um per row" in data["spacing"]
    metrics = {"source": "summary.json", "foreground_mean": {"Dice": 0.5}, "per_class": {"1": {"name": "IRF",
                                                                                              "Dice": 0.5}}}
    text = write_model_card(tiny_bundle, tmp_path / "model_card.md", metrics=metrics).read_text()
    assert "Dice 0.500" in text


def test_s2d_stem_bundle_loads_predicts_and_exports(tmp_path):
    # the bundle's model section carries the stem: Predictor rebuilds it, and export traces it
    from segclr.io.bundle import save_bundle
    from segclr.models import UNet

    torch.manual_seed(0)
    net = UNet(1, 3, 4, 2, "batch", stem="s2d").eval()
    meta = {"model": {"num_classes": 3, "base_channels": 4, "depth": 2, "norm": "batch", "stem": "s2d"},
            "preprocess": {"input_height": 32, "pad_multiple": 4}, "classes": ["background", "IRF", "SRF"],
            "training": {"mode": "supervised", "labeled_domain": "spectralis", "steps": 0, "seed": 0}}
    bundle = tmp_path / "model.safetensors"
    save_bundle(bundle, net.state_dict(), meta)
    predictor = Predictor(bundle)
    assert predictor.net.stem == "s2d"
    x = _bscan_batch(predictor.prep)
    with torch.no_grad():
        # the predictor folds batch norm into the convolutions: the same function up to float rounding
        torch.testing.assert_close(predictor.net(x), net(x), atol=1e-5, rtol=1e-5)
    res = export_model(bundle, "torchscript", tmp_path / "model.pt")
    assert res.max_abs_diff <= 1e-4
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(res.path))(x), net(x), atol=1e-4)


def test_model_card_of_a_spacing_aware_bundle_names_its_target_spacing(tiny_bundle):
    """A bundle with a target spacing is resampled by spacing, not resized by height: the card says so."""
    import copy

    from safetensors import safe_open

    from segclr.inference.export import model_card

    with safe_open(str(tiny_bundle), "pt") as f:
        raw = f.metadata()
    meta = {k: json.loads(v) for k, v in raw.items() if k != "format"}
    by_height = model_card(meta)
    assert by_height["preprocessing"]["resize"].startswith("to 32 rows")
    assert by_height["spacing"].startswith("the model sees pixels")
    aware = copy.deepcopy(meta)
    aware["preprocess"]["target_spacing_um"] = [3.87, 11.3]
    aware["training"].setdefault("config", {}).setdefault("data", {})["geometry"] = "native"
    card = model_card(aware)
    assert card["preprocessing"]["resize"].startswith("B-scans of known pixel spacing resampled to 3.87 x 11.3 um")
    assert "of unknown spacing to 32 rows" in card["preprocessing"]["resize"]
    assert card["spacing"].startswith("spacing-aware:") and "resampled to the target spacing" in card["spacing"]
    assert "each simulated device on its own grid" in card["spacing"]
    aware["training"]["config"]["data"]["geometry"] = "source"
    assert "all domains on the spectralis grid" in model_card(aware)["spacing"]
