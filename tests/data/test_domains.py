import numpy as np
import pytest

from segclr.data.datamodule import SegCLRDataModule
from segclr.data.domains import DomainBank, ANNOTATED_COLUMNS, SPLITS, load_spectralis, patients_for, role_of


def test_splits_are_disjoint_and_cover_all_patients():
    seen = [p for ps in SPLITS.values() for p in ps]
    assert sorted(seen) == list(range(1, 11))
    assert len(seen) == len(set(seen))
    assert patients_for("test") == (9, 10)
    assert role_of(7) == "target_train"


def test_embedded_data_loads_as_volumes_in_slice_order():
    vols = load_spectralis()
    assert [v.patient for v in vols] == list(range(1, 11))
    assert all(len(v) == 11 for v in vols)
    width = ANNOTATED_COLUMNS[1] - ANNOTATED_COLUMNS[0]
    assert vols[0].images[0].shape == (496, width)
    assert vols[0].names[:3] == ["subject01_slice00.png", "subject01_slice01.png", "subject01_slice02.png"]
    assert set(np.unique(np.concatenate([m.ravel() for m in vols[0].masks]))) <= {0, 1}


@pytest.mark.parametrize("mode", ["supervised", "segclr_uda", "segclr_dg", "upper_bound"])
def test_no_test_patient_reaches_training(mode, bank, make_config):
    """Split leakage: the training streams only ever see their role's patients."""
    cfg = make_config(objective={"mode": mode})
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    labeled = {v.patient for v in dm._labeled}
    # the upper bound trains on patients 1-5 rendered as the target device: as many labels as the baseline
    assert labeled == set(SPLITS["source_train"])
    assert {v.domain for v in dm._labeled} == {"cirrus_like" if mode == "upper_bound" else "spectralis"}
    for domain, vols in dm._unlabeled.items():
        patients = {v.patient for v in vols}
        role = "source_train" if domain == cfg.data.source_domain else "target_train"
        assert patients == set(SPLITS[role]), domain
        assert not patients & set(SPLITS["test"])
    # and the batches drawn carry only those patients
    for domain, vols in dm._unlabeled.items():
        it = iter(dm.train_dataloader().iterables[domain])
        groups = {int(g) for _ in range(5) for g in next(it)["group"]}
        assert groups <= {v.patient for v in vols}


def test_simulated_domains_keep_labels():
    bank = DomainBank(0, geometry="source")
    src = bank.volumes("spectralis", "test")
    sim = bank.volumes("cirrus_like", "test")
    assert [v.patient for v in sim] == [9, 10]
    for a, b in zip(src, sim):
        assert all(np.array_equal(m1, m2) for m1, m2 in zip(a.masks, b.masks))
        assert not np.allclose(a.images[0], b.images[0])
