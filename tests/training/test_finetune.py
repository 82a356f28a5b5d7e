"""finetune starts from a pretrained bundle (which also carries shift statistics)."""

import pytest
import torch

from segclr.inference.shift import fit_shift_statistics, to_bundle_tensors
from segclr.io.bundle import save_bundle
from segclr.io.images import InputError
from segclr.training.module import SegCLRModule, build_unet


def test_finetune_loads_the_pretrained_unet(tmp_path, make_config):
    pre = make_config(objective={"mode": "ssl_pretrain"})
    net = build_unet(pre)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    stats = to_bundle_tensors(fit_shift_statistics(torch.randn(10, 4, dtype=torch.float64)))
    path = tmp_path / "pre.safetensors"
    save_bundle(path, {**net.state_dict(), **stats}, {"model": {}, "preprocess": {}, "classes": ["bg", "fluid"]})
    module = SegCLRModule(make_config(objective={"mode": "finetune", "init_from": str(path)}).to_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(module.net.state_dict()[k], v), k


def test_finetune_from_another_architecture_is_refused(tmp_path, make_config):
    other = make_config(model={"base_channels": 8})
    path = tmp_path / "other.safetensors"
    save_bundle(path, build_unet(other).state_dict(), {"model": {}, "preprocess": {}, "classes": ["bg", "fluid"]})
    with pytest.raises(InputError, match="does not match"):
        SegCLRModule(make_config(objective={"mode": "finetune", "init_from": str(path)}).to_dict())
