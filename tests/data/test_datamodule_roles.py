"""Which volumes SegCLRDataModule.setup takes for each stream: role, target_patients, val_patients,
padding and the spacing reference, and the labeled volumes it refuses (found untested by
``make mutation MODULES=labels``; the label-range checks are in tests/test_mut_label_checks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from segclr.data.datamodule import SegCLRDataModule
from segclr.data.domains import DomainBank
from segclr.data.domains import Volume as SliceVolume
from segclr.io.images import InputError

SRC, TGT = "spectralis", "cirrus_like"


def _vol(domain, patient, slices=3, labeled=True, spacing=(4.0, 12.0), h=64, w=48):
    rng = np.random.default_rng(patient)
    masks = [np.zeros((h, w), np.int64) for _ in range(slices)]
    masks[0][5:9, 5:9] = 1
    images = [rng.random((h, w)).astype(np.float32) for _ in range(slices)]
    return SliceVolume(domain, patient, images, masks, names=[f"{domain}{patient}#{k}" for k in range(slices)],
                       labeled=labeled, spacing_um=spacing)


class _RoleBank(DomainBank):
    """Different volumes for every (domain, role); an unknown pair raises KeyError like a dataset file's bank."""

    def __init__(self, layout: dict) -> None:
        super().__init__(simulation_seed=0)
        self.external = True
        self.layout = layout

    def volumes(self, name: str, role: str):
        return self.layout[(name, role)]


def _layout(changes: dict | None = None) -> dict:
    """(domain, role) -> volumes; ``changes`` replaces entries (None removes one)."""
    layout = {(SRC, "source_train"): [_vol(SRC, p) for p in (1, 2, 3)],
              (TGT, "target_train"): [_vol(TGT, p, labeled=False, spacing=(2.0, 6.0)) for p in (6, 7, 8)],
              (TGT, "source_train"): [_vol(TGT, p, spacing=(2.0, 6.0)) for p in (1, 2, 3)]}
    layout.update(changes or {})
    return {k: v for k, v in layout.items() if v is not None}


def _patients(vols):
    return [(v.domain, v.patient) for v in vols]


def test_setup_takes_each_stream_from_its_role(make_config):
    cfg = make_config(objective={"mode": "segclr_uda"}, data={"target_patients": 2})
    dm = SegCLRDataModule(cfg, bank=_RoleBank(_layout()))
    dm.setup()
    assert _patients(dm._labeled) == [(SRC, 1), (SRC, 2), (SRC, 3)]
    assert {d: _patients(v) for d, v in dm._unlabeled.items()} == {
        SRC: [(SRC, 1), (SRC, 2), (SRC, 3)],   # the source's training patients, all of them
        TGT: [(TGT, 6), (TGT, 7)]}             # data.target_patients of the target's
    assert dm.prep.target_spacing_um == (4.0, 12.0)  # the source's spacing sets the working grid
    for v in [*dm._labeled, *dm._unlabeled[SRC], *dm._unlabeled[TGT]]:
        # at working resolution and at least one crop wide: 48 columns of 12 um, 64 rows of 4 um ...
        assert v.images.shape[0] == 3 and v.images.shape[1] == 1 and v.masks.shape == v.images[:, 0].shape
    assert tuple(dm._unlabeled[SRC][0].images.shape[-2:]) == (64, 48)
    # ... and a target B-scan of 2 x 6 um pixels is resized to the source's grid (32 x 24), then
    # zero-padded on the right to the 32-pixel crop
    target = dm._unlabeled[TGT][0].images
    assert tuple(target.shape[-2:]) == (32, 32)
    assert target[..., 24:].abs().max() == 0 and target[..., :24].abs().min() > 0
    assert dm.val_volumes == []
    dm.setup()  # a second call (Lightning calls it per stage) changes nothing
    assert len(dm._labeled) == 3 and len(dm._unlabeled[TGT]) == 2


def test_supervised_setup_twice_keeps_one_copy(make_config):
    dm = SegCLRDataModule(make_config(objective={"mode": "supervised"}), bank=_RoleBank(_layout()))
    dm.setup()
    dm.setup()
    assert _patients(dm._labeled) == [(SRC, 1), (SRC, 2), (SRC, 3)] and dm._unlabeled == {}


def test_multi_domain_setup_trains_on_both_labeled_sets(make_config):
    layout = _layout({(TGT, "target_train"): [_vol(TGT, p, spacing=(2.0, 6.0)) for p in (6, 7, 8)]})
    dm = SegCLRDataModule(make_config(objective={"mode": "multi_domain"}), bank=_RoleBank(layout))
    dm.setup()
    assert _patients(dm._labeled) == [(SRC, 1), (SRC, 2), (SRC, 3), (TGT, 6), (TGT, 7), (TGT, 8)]


def test_validation_patients_are_held_out_at_working_resolution(make_config):
    cfg = make_config(objective={"mode": "segclr_uda"}, data={"val_patients": [2]})
    dm = SegCLRDataModule(cfg, bank=_RoleBank(_layout()))
    dm.setup()
    assert _patients(dm.val_volumes) == [(SRC, 2)]
    assert tuple(dm.val_volumes[0].images.shape) == (3, 1, 64, 48) and dm.val_volumes[0].masks.sum() == 16
    assert _patients(dm._labeled) == [(SRC, 1), (SRC, 3)]
    assert _patients(dm._unlabeled[SRC]) == [(SRC, 1), (SRC, 3)]


def test_without_source_volumes_the_labeled_then_the_unlabeled_set_the_grid(make_config):
    # upper bound on the embedded benchmark: the target rendering of source patients; no source domain
    no_source = _layout({(SRC, "source_train"): None})
    dm = SegCLRDataModule(make_config(objective={"mode": "upper_bound"}), bank=_RoleBank(no_source))
    dm.setup()
    assert _patients(dm._labeled) == [(TGT, 1), (TGT, 2), (TGT, 3)]
    assert dm.prep.target_spacing_um == (2.0, 6.0)
    # self-supervised pretraining with an empty source domain: the target's unlabeled volumes
    empty_source = _layout({(SRC, "source_train"): []})
    dm = SegCLRDataModule(make_config(objective={"mode": "ssl_pretrain"}), bank=_RoleBank(empty_source))
    dm.setup()
    assert dm._labeled == [] and _patients(dm._unlabeled[TGT]) == [(TGT, 6), (TGT, 7), (TGT, 8)]
    assert dm.prep.target_spacing_um == (2.0, 6.0)


def test_a_labeled_role_volume_without_labels_is_named(make_config):
    layout = _layout({(SRC, "source_train"): [
        _vol(SRC, 1), _vol(SRC, 4, slices=1, labeled=False), _vol(SRC, 5, slices=1, labeled=False)]})
    dm = SegCLRDataModule(make_config(objective={"mode": "supervised"}), bank=_RoleBank(layout))
    with pytest.raises(InputError, match=r"^spectralis4: domain spectralis role source_train trains with labels, "
                                         r"but this volume has none$"):
        dm.setup()
    assert dm._labeled == [] and dm._unlabeled == {}  # nothing half set up


def test_a_single_bscan_volume_with_a_label_too_high_is_named(make_config):
    vol = _vol(SRC, 4, slices=1)
    vol.masks[0][0, 0] = 2
    layout = _layout({(SRC, "source_train"): [_vol(SRC, 1), vol]})
    dm = SegCLRDataModule(make_config(objective={"mode": "supervised"}, model={"num_classes": 2}),
                          bank=_RoleBank(layout))
    with pytest.raises(InputError, match=r"^spectralis4: label 2 but model\.num_classes is 2 \(RETOUCH needs 4\)$"):
        dm.setup()
