"""One encoder pass per batch gives both the masks and the domain-shift scores of a volume."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from segclr.inference.predict import Predictor
from segclr.inference.shift import bottleneck_embeddings, fit_shift_statistics, to_bundle_tensors
from segclr.inference.volumes import normalize_intensity, predict_volumes, segment_volume, segment_volume_scored
from segclr.io.bundle import load_bundle, save_bundle
from segclr.io.metaimage import write_metaimage
from segclr.io.volumes import Volume
from segclr.models import UNet

SPACING = (0.12, 0.0039, 0.0113)


def oct_like(shape=(5, 40, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, shape[1])[None, :, None]
    return np.clip(120 + 100 * np.sin(rows * 9) + rng.normal(0, 30, shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shift_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle plus shift statistics fitted on its own bottleneck features (and a post-processing step)."""
    p = Predictor(tiny_bundle)
    images = normalize_intensity(np.concatenate([oct_like(seed=s) for s in range(4)]))
    x, _ = p._network_input(images)
    stats = fit_shift_statistics(bottleneck_embeddings(p.net, x), groups=[i // 5 for i in range(len(images))])
    state, meta = load_bundle(tiny_bundle)
    meta = json.loads(json.dumps(meta))
    meta["postprocess"] = {"min_component_px": 3, "retina_only": False}
    path = tmp_path_factory.mktemp("shift") / "model.safetensors"
    save_bundle(path, {**state, **to_bundle_tensors(stats)}, meta)
    return path


def count_encodes(predictor: Predictor) -> list[int]:
    """Wrap ``predictor.net.encode`` so every call appends its batch size to the returned list."""
    calls: list[int] = []
    encode = predictor.net.encode

    def counted(x):
        calls.append(len(x))
        return encode(x)

    predictor.net.encode = counted
    return calls


def test_predict_with_scores_equals_the_two_pass_results_in_one_encoder_pass(shift_bundle):
    p = Predictor(shift_bundle)
    images = normalize_intensity(oct_like(seed=7))
    masks_two, scores_two = p.predict_batch(images), p.shift_scores(images)
    calls = count_encodes(p)
    masks, scores = p.predict_with_scores(images)
    assert calls == [len(images)]
    assert np.array_equal(masks, masks_two)
    assert scores.shape == (len(images),) and np.allclose(scores, scores_two, rtol=1e-5, atol=1e-8)
    assert len(np.unique(masks)) > 1


def test_volume_segmentation_runs_the_encoder_once_per_batch(shift_bundle):
    p = Predictor(shift_bundle)
    vol = oct_like((7, 40, 48), seed=3)
    images = normalize_intensity(vol)
    masks_two, scores_two = segment_volume(p, vol, batch_size=3), p.shift_scores(images)
    calls = count_encodes(p)
    masks, scores = segment_volume_scored(p, vol, batch_size=3)
    assert calls == [3, 3, 1]
    assert np.array_equal(masks, masks_two)
    assert np.allclose(scores, scores_two, rtol=1e-5, atol=1e-8)


def test_a_bundle_without_shift_statistics_gives_no_scores(tiny_bundle):
    p = Predictor(tiny_bundle)
    vol = oct_like()
    calls = count_encodes(p)
    masks, scores = p.predict_with_scores(normalize_intensity(vol))
    assert scores is None and calls == [5]
    masks_v, scores_v = segment_volume_scored(p, vol, batch_size=2)
    assert scores_v is None and np.array_equal(masks_v, masks)


def test_predict_volumes_scores_each_volume_from_the_segmentation_pass(shift_bundle, tmp_path):
    vols = {"P1": oct_like((5, 40, 48), seed=1), "P2": oct_like((4, 40, 48), seed=2)}
    for case, arr in vols.items():
        write_metaimage(tmp_path / "in" / case / "oct.mhd", Volume(arr, SPACING))
    p = Predictor(shift_bundle)
    expected = {case: float(np.mean(p.shift_scores(normalize_intensity(arr), (SPACING[1] * 1000, SPACING[2] * 1000))))
                for case, arr in vols.items()}
    calls = count_encodes(p)
    res = predict_volumes(shift_bundle, tmp_path / "in", tmp_path / "out", batch_size=2, progress=False, predictor=p)
    assert calls == [2, 2, 1, 2, 2]  # 3 batches for the 5 B-scans of P1, 2 for the 4 of P2: nothing more
    assert len(calls) == sum(math.ceil(len(a) / 2) for a in vols.values())
    rows = {r["case"]: r for r in csv.DictReader(res.csv.open())}
    for case, score in expected.items():
        assert float(rows[case]["shift_score"]) == pytest.approx(score, rel=1e-5)
        assert rows[case]["shift_threshold"] != ""


def test_the_predictor_runs_a_folded_copy_of_the_bundle(tiny_bundle):
    """Batch norm is folded into the predictor's convolutions, kept channels_last on the CPU; its logits match the
    bundle's own network."""
    predictor = Predictor(tiny_bundle)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.net.modules())
    weight = predictor.net.encoder[1][0].weight  # (8, 4, 3, 3): the two layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    state, _ = load_bundle(tiny_bundle)
    ref = UNet(1, 3, 4, 2, "batch")
    ref.load_state_dict(state)
    ref.eval()
    x = torch.rand(2, 1, 32, 40)
    with torch.no_grad():
        want = ref(x)
        torch.testing.assert_close(predictor.net(x), want, atol=1e-5, rtol=1e-5)
    assert want.argmax(1).unique().numel() == 3  # the tiny model predicts every class: not a vacuous check
