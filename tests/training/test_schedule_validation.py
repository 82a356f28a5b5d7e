"""The learning-rate schedules, the validation split and the validation curve written by fit."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from segclr.config import ConfigError
from segclr.data.datamodule import SegCLRDataModule, WorkingVolume
from segclr.io.images import InputError
from segclr.training.module import LRFactor, SegCLRModule
from segclr.training.validation import score_working_volumes


def test_warmup_is_linear_then_each_schedule_ends_where_documented():
    for kind, end in (("poly", 0.0), ("cosine", 0.05), ("constant", 1.0)):
        f = LRFactor(kind, warmup=4, total=104)
        assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
        assert f(4) == pytest.approx(1.0)
        assert f(104) == pytest.approx(end, abs=1e-12)
    poly = LRFactor("poly", 0, 100)
    assert poly(50) == pytest.approx(0.5 ** 0.9)
    assert LRFactor("cosine", 0, 100)(50) == pytest.approx(0.05 + 0.95 * 0.5)


def test_default_schedule_is_the_original_cosine_and_others_use_the_factor(make_config):
    sched = SegCLRModule(make_config().to_dict()).configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    cfg = make_config(trainer={"schedule": "poly", "warmup_steps": 1, "max_steps": 3})
    sched = SegCLRModule(cfg.to_dict()).configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.trainer.lr)  # warm-up of 1 step: full lr
    state = sched.state_dict()["lr_lambdas"][0]
    assert state == {"kind": "poly", "warmup": 1, "total": 3}  # saved in checkpoints, so a resume can stretch it


def test_schedule_keys_are_checked(make_config):
    with pytest.raises(ConfigError, match="trainer.schedule"):
        make_config(trainer={"schedule": "step"})
    with pytest.raises(ConfigError, match="trainer.warmup_steps"):
        make_config(trainer={"warmup_steps": 2, "max_steps": 2})
    with pytest.raises(ConfigError, match="trainer.val_every_n_steps.*data.val_patients"):
        make_config(trainer={"val_every_n_steps": 5})


def test_validation_patients_leave_every_training_stream(make_config, bank):
    cfg = make_config(objective={"mode": "segclr_uda"}, data={"val_patients": [5]})
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    assert {v.patient for v in dm.val_volumes} == {5}
    assert {v.patient for v in dm._labeled} == {1, 2, 3, 4}
    assert {v.patient for v in dm._unlabeled["spectralis"]} == {1, 2, 3, 4}
    assert {v.patient for v in dm._unlabeled["cirrus_like"]} == {6, 7, 8}  # target stream untouched
    assert len(dm.val_volumes[0].images) == 11
    plain = SegCLRDataModule(make_config(objective={"mode": "supervised"}), bank)
    plain.setup("fit")
    assert plain.val_volumes == [] and {v.patient for v in plain._labeled} == {1, 2, 3, 4, 5}
    assert plain.prep == dm.prep  # the held-out patient does not move the working grid


@pytest.mark.parametrize("patients, message", [([9], "not among the labeled training patients.*never from the test"),
                                                ([1, 2, 3, 4, 5], "keep at least one")])
def test_bad_validation_split_is_refused(make_config, bank, patients, message):
    dm = SegCLRDataModule(make_config(objective={"mode": "supervised"}, data={"val_patients": patients}), bank)
    with pytest.raises(InputError, match=message):
        dm.setup("fit")
    assert dm.val_volumes == [] and dm._labeled == []


class _Oracle(torch.nn.Module):
    """Predicts fluid where the image is > 0.5: the test builds images from the masks."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        fluid = (x > 0.5).float()
        return torch.cat([1 - fluid, fluid], dim=1) + 0 * self.w


def test_validation_scores_are_pooled_and_per_bscan_with_the_nnunet_rule():
    masks = torch.zeros(3, 10, 12, dtype=torch.long)
    masks[0, :2, :5] = 1          # 10 px of fluid, predicted exactly: Dice 1
    masks[1, 0, :4] = 1           # 4 px of fluid, predicted on 2 of them plus 2 wrong pixels
    images = masks[:, None].float().clone()
    images[1, 0, 0, 2:4] = 0.0    # 2 false negatives
    images[1, 0, 5, :2] = 1.0     # 2 false positives
    # masks[2] and its image are empty: left out of the per-B-scan mean
    out = score_working_volumes(_Oracle(), [WorkingVolume("d", 1, images, masks)], pad_multiple=4)
    tp, fp, fn = 10 + 2, 2, 2
    assert out["dice_pooled"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert out["dice_per_bscan"] == pytest.approx((1.0 + 2 * 2 / (4 + 2 + 2)) / 2)


def test_the_curve_file_grows_with_each_score_so_a_stopped_run_keeps_it(tmp_path):
    from types import SimpleNamespace

    from segclr.training.validation import ValidationCurve

    masks = torch.zeros(1, 8, 8, dtype=torch.long)
    masks[0, :2, :3] = 1
    volume = WorkingVolume("d", 1, masks[:, None].float(), masks)
    path = tmp_path / "val_curve.csv"
    curve = ValidationCurve([volume], pad_multiple=4, every=2, path=path)
    logged = []
    module = SimpleNamespace(net=_Oracle(), log=lambda key, value, **kw: logged.append(key))
    for step in (1, 2, 3, 4):
        curve.on_train_batch_end(SimpleNamespace(global_step=step, max_steps=10, is_global_zero=True),
                                 module, None, None, 0)
        rows = list(csv.DictReader(path.open())) if path.exists() else []
        assert [int(r["step"]) for r in rows] == [s for s in (2, 4) if s <= step]
    assert float(rows[-1]["dice_pooled"]) == 1.0 and logged.count("val/dice_pooled") == 2
    elsewhere = ValidationCurve([volume], pad_multiple=4, every=2, path=tmp_path / "other.csv")
    elsewhere.on_train_batch_end(SimpleNamespace(global_step=2, max_steps=10, is_global_zero=False), module,
                                 None, None, 0)
    assert elsewhere.history and not (tmp_path / "other.csv").exists()  # only rank 0 writes


@pytest.mark.slow
def test_fit_writes_the_validation_curve(make_config, bank, tmp_path):
    from segclr.training.trainer import fit

    cfg = make_config(objective={"mode": "supervised"}, data={"val_patients": [5]},
                      trainer={"max_steps": 4, "val_every_n_steps": 2, "schedule": "poly", "warmup_steps": 1})
    fit(cfg, tmp_path / "run", bank=bank)
    rows = list(csv.DictReader((tmp_path / "run" / "val_curve.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0.0 <= float(r["dice_pooled"]) <= 1.0 or math.isnan(float(r["dice_pooled"])) for r in rows)


def test_bf16_on_a_cpu_without_native_bf16_is_warned_about():
    from segclr.training.trainer import bf16_cpu_note, cpu_has_native_bf16

    avx2 = "processor : 0\nflags : fpu sse avx2 fma\n"
    amx = "processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_bf16\n"
    assert not cpu_has_native_bf16(avx2) and cpu_has_native_bf16(amx)
    assert "several times slower" in bf16_cpu_note("bf16-mixed", "cpu", avx2)
    assert bf16_cpu_note("bf16-mixed", "cpu", amx) is None
    assert bf16_cpu_note("32-true", "cpu", avx2) is None
    assert bf16_cpu_note("bf16-mixed", "gpu", avx2) is None
