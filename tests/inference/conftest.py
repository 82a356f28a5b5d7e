"""A tiny untrained model bundle (no training needed) for the inference tests."""

from __future__ import annotations

import pytest
import torch

from segclr.io.bundle import save_bundle
from segclr.models import UNet

META = {
    "model": {"num_classes": 3, "base_channels": 4, "depth": 2, "norm": "batch", "dropout": 0.0},
    "preprocess": {"input_height": 32, "pad_multiple": 4},
    "classes": ["background", "IRF", "SRF"],
    "training": {"mode": "supervised", "labeled_domain": "spectralis", "unlabeled_domains": ["cirrus_like"],
                 "steps": 0, "seed": 0, "segclr_version": "test"},
}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """``model.safetensors`` of an untrained 3-class UNet that predicts all three classes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = UNet(1, 3, 4, 2, "batch")
    # settle the BatchNorm statistics on B-scan-like rows, then centre the logits, so that the
    # untrained network predicts all three classes (a constant model would make comparisons vacuous)
    rows = torch.linspace(0, 1, 32)[None, None, :, None]
    x = (0.5 + 0.4 * torch.sin(rows * 9) + 0.12 * torch.randn(5, 1, 32, 40)).clamp(0, 1)
    net.train()
    with torch.no_grad():
        for _ in range(30):
            net(x)
        net.eval()
        net.out.bias.sub_(net(x).mean((0, 2, 3)))
    path = tmp_path_factory.mktemp("bundle") / "model.safetensors"
    save_bundle(path, net.state_dict(), META)
    torch.set_num_threads(threads)
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tests run tiny networks: one intra-op thread is fastest, and robust on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
