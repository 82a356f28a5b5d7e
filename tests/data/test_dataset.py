"""Training from the user's own volumes: a dataset file pointing at RETOUCH-format MetaImages."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from segclr.cli import main
from segclr.data.domains import DomainBank, load_dataset
from segclr.io.images import InputError
from segclr.io.metaimage import write_metaimage
from segclr.io.volumes import Volume

SPACING = (0.12, 0.0039, 0.0113)


def _case(folder, seed: int, labeled: bool = True) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (4, 64, 96), dtype=np.uint8)
    label = np.zeros((4, 64, 96), np.uint8)
    label[:, 20:30, 40:60] = 1
    label[:, 40:44, 10:20] = 3
    write_metaimage(folder / "oct.mhd", Volume(image, SPACING))
    if labeled:
        write_metaimage(folder / "reference.mhd", Volume(label, SPACING))


@pytest.fixture
def dataset(tmp_path):
    for i, name in enumerate(["src1", "src2", "src_test"]):
        _case(tmp_path / "retouch" / name, i)
    _case(tmp_path / "cirrus" / "c1", 7, labeled=False)
    spec = {"domains": {
        "spectralis": [
            {"folder": "retouch/src1", "role": "source_train"},
            {"image": "retouch/src2/oct.mhd", "label": "retouch/src2/reference.mhd", "role": "source_train"},
            {"image": "retouch/src_test/oct.mhd", "label": "retouch/src_test/reference.mhd", "role": "test"},
        ],
        "cirrus": [{"image": "cirrus/c1/oct.mhd", "role": "target_train"}],
    }}
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_dataset_file_builds_domains_with_roles(dataset):
    domains = load_dataset(dataset)
    assert set(domains) == {"spectralis", "cirrus"}
    bank = DomainBank(dataset=dataset)
    assert len(bank.volumes("spectralis", "source_train")) == 2
    assert len(bank.volumes("spectralis", "test")) == 1
    (target,) = bank.volumes("cirrus", "target_train")
    assert not target.labeled and len(target) == 4
    assert target.images[0].dtype == np.float32 and target.images[0].max() <= 1.0
    with pytest.raises(InputError, match="not in the dataset"):
        bank.domain("topcon")


def test_fit_from_a_retouch_dataset(dataset, tmp_path):
    out = tmp_path / "run"
    argv = ["fit", "--out", str(out), "--set", f"data.dataset={dataset}", "--set", "data.source_domain=spectralis",
            "--set", "data.target_domains=[cirrus]", "--set", "model.num_classes=4", "--set", "data.crop_size=32",
            "--set", "data.batch_size=2", "--set", "data.input_height=64", "--set", "model.base_channels=4",
            "--set", "model.depth=2", "--set", "model.head_hidden=16", "--set", "model.embedding_dim=8",
            "--set", "trainer.max_steps=2", "--set", "trainer.progress_bar=false"]
    assert main(argv) == 0
    from segclr.io.bundle import load_bundle

    meta = load_bundle(out / "model.safetensors")[1]
    assert meta["classes"] == ["background", "IRF", "SRF", "PED"]
    # labels above num_classes are refused, naming the file
    assert main([*argv[:2], str(tmp_path / "run2"), *argv[3:], "--set", "model.num_classes=2"]) == 2


def test_labeled_role_without_labels_is_refused(tmp_path):
    _case(tmp_path / "a", 0, labeled=False)
    (tmp_path / "d.yaml").write_text(
        yaml.safe_dump({"domains": {"x": [{"image": "a/oct.mhd", "role": "source_train"}]}}))
    argv = ["fit", "--out", str(tmp_path / "r"), "--set", f"data.dataset={tmp_path / 'd.yaml'}",
            "--set", "data.source_domain=x", "--set", "objective.mode=supervised", "--set", "trainer.max_steps=1",
            "--set", "data.crop_size=32", "--set", "data.input_height=64", "--set", "model.depth=2"]
    assert main(argv) == 2
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize("spec, needle", [
    ({"domains": {"x": [{"image": "a.mhd"}]}}, "role"),
    ({"domains": {"x": [{"image": "a.mhd", "role": "train", "extra": 1}]}}, "role"),
    ({"nodomains": 1}, "domains"),
])
def test_bad_dataset_files(tmp_path, spec, needle):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match=needle):
        load_dataset(path)
