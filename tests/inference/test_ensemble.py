"""Predictor with several bundles: an ensemble that averages its members' probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segclr.inference.predict import Predictor
from segclr.io.bundle import load_bundle, save_bundle
from segclr.io.images import InputError


def _variant(src, tmp_path, name: str, seed: int, meta_change: dict | None = None):
    """The tiny bundle with its output layer perturbed (another member), and optionally its metadata changed."""
    state, meta = load_bundle(src)
    meta = json.loads(json.dumps(meta))
    meta.update(meta_change or {})
    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in state.items()}
    state["out.weight"] += 0.5 * torch.randn(state["out.weight"].shape, generator=g)
    path = tmp_path / name / "model.safetensors"
    path.parent.mkdir()
    save_bundle(path, state, meta)
    return path


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    rows = np.linspace(0, 1, 40)[None, :, None]
    return np.clip(0.5 + 0.4 * np.sin(rows * 9) + rng.normal(0, 0.12, (3, 40, 48)), 0, 1).astype(np.float32)


def test_an_ensemble_averages_its_members_probabilities(tiny_bundle, tmp_path, images):
    other = _variant(tiny_bundle, tmp_path, "b", seed=1)
    a, b = Predictor(tiny_bundle), Predictor(other)
    ens = Predictor([tiny_bundle, other])
    pa, pb, pe = (p.probabilities_batch(images) for p in (a, b, ens))
    assert not torch.allclose(pa, pb, atol=1e-3)  # the members differ, so the mean is not either of them
    torch.testing.assert_close(pe, (pa + pb) / 2, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(pe.sum(1), torch.ones_like(pe[:, 0]), atol=1e-5, rtol=0)
    assert ens.checkpoints == [str(tiny_bundle), str(other)] and len(ens.nets) == 2 and ens.net is ens.nets[0]
    expected = torch.max((pa + pb) / 2, dim=1).indices.numpy()
    assert (ens.predict_batch(images) == expected).all()
    assert (ens(images[0]) == expected[0]).all()


def test_a_list_of_one_bundle_is_the_single_model(tiny_bundle, images):
    single, listed = Predictor(tiny_bundle), Predictor([tiny_bundle])
    assert len(listed.nets) == 1
    torch.testing.assert_close(listed.probabilities_batch(images), single.probabilities_batch(images), atol=0, rtol=0)


@pytest.mark.parametrize("change, what", [
    ({"classes": ["background", "fluid", "other"]}, "classes"),
    ({"preprocess": {"input_height": 64, "pad_multiple": 4}}, "preprocess"),
    ({"postprocess": {"min_component_px": 5, "retina_only": False}}, "postprocess"),
])
def test_members_that_disagree_are_refused_naming_the_bundle(tiny_bundle, tmp_path, change, what):
    odd = _variant(tiny_bundle, tmp_path, "odd", seed=2, meta_change=change)
    with pytest.raises(InputError, match=rf"{odd}: cannot ensemble it with .*its {what} differ"):
        Predictor([tiny_bundle, odd])


def test_an_empty_ensemble_is_refused():
    with pytest.raises(InputError, match="no model bundle"):
        Predictor([])
