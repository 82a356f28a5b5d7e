"""The dry-run time estimate: this machine's committed cells set the per-step costs."""

import json
from dataclasses import asdict

import pytest

from segclr.config import from_dict
from segclr.experiment.cells import CELL_FORMAT
from segclr.experiment.estimate import (CELL_OVERHEAD_S, SECONDS_PER_STEP, format_estimate, measured_rates,
                                        rates_for, run_seconds, study_cells_dirs)
from segclr.experiment.runner import Cell

HERE = {"cpu": "Test CPU 9000", "cpu_capability": "AVX2", "torch_threads": 2, "device": "cpu"}


def _write_cell(folder, name, mode, steps, seconds, machine=HERE, batch=8, pretrain=None):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = from_dict({"objective": {"mode": mode}, "trainer": {"max_steps": steps},
                     "data": {"batch_size": batch, "crop_size": 128}})   # the reference crop
    record = {"format": CELL_FORMAT, "config": asdict(cfg), "train_seconds": seconds, "machine": dict(machine),
              "pretrain": pretrain}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_median_seconds_per_step_from_this_machine_only(tmp_path):
    cells = tmp_path / "results" / "study" / "cells"
    _write_cell(cells, "a", "supervised", 800, 160.0)             # 0.20 s/step
    _write_cell(cells, "b", "supervised", 800, 240.0)             # 0.30 (busy machine)
    _write_cell(cells, "c", "supervised", 400, 100.0)             # 0.25 -> median 0.25
    _write_cell(cells, "d", "supervised", 800, 80.0, batch=16)    # 0.05 per reference step... twice the batch
    other = dict(HERE, cpu="Another CPU")
    _write_cell(cells, "e", "supervised", 800, 9999.0, machine=other)
    _write_cell(cells, "f", "segclr_uda", 800, 999.0, pretrain={"objective": {"mode": "ssl_pretrain"}})
    (cells / "broken.json").write_text("{not json")
    rates, n = measured_rates([cells], HERE)
    assert n == 4
    assert set(rates) == {"supervised"}
    # reference-step seconds 0.20, 0.30, 0.25, 0.05 -> median 0.225
    assert rates["supervised"] == pytest.approx(0.225)


def test_unmeasured_modes_scale_with_the_measured_supervised_step():
    table = rates_for({"supervised": 2 * SECONDS_PER_STEP["supervised"]})
    assert table["supervised"] == pytest.approx(2 * SECONDS_PER_STEP["supervised"])
    assert table["dann"] == pytest.approx(2 * SECONDS_PER_STEP["dann"])
    assert rates_for({}) == SECONDS_PER_STEP
    measured = rates_for({"supervised": 0.2, "dann": 1.0})
    assert measured["dann"] == 1.0


def test_run_seconds_scales_with_steps_batch_crop_and_width():
    base = from_dict({"objective": {"mode": "supervised"}, "trainer": {"max_steps": 100}, "data": {"crop_size": 128}})
    wide = from_dict({"objective": {"mode": "supervised"}, "trainer": {"max_steps": 100},
                      "model": {"base_channels": 16}, "data": {"batch_size": 16, "crop_size": 128}})
    rates = {"supervised": 0.5}
    assert run_seconds(base, rates) == pytest.approx(100 * 0.5 + CELL_OVERHEAD_S)
    assert run_seconds(wide, rates) == pytest.approx(100 * 0.5 * 2 * 4 + CELL_OVERHEAD_S)
    # today's default crop (256 px) is 4x the reference crop's pixels
    default = from_dict({"objective": {"mode": "supervised"}, "trainer": {"max_steps": 100}})
    assert default.data.crop_size == 256
    assert run_seconds(default, rates) == pytest.approx(100 * 0.5 * 4 + CELL_OVERHEAD_S)


def test_format_estimate_says_where_its_costs_come_from(tmp_path):
    study = tmp_path / "results" / "new_study" / "cells"     # not yet created: a study never run
    measured = tmp_path / "results" / "old_study" / "cells"
    _write_cell(measured, "a", "supervised", 1000, 1000.0)   # 1 s/step on this machine
    assert study_cells_dirs(study, extra_root=None) == [measured.resolve()]
    elsewhere = tmp_path / "scratch" / "run" / "cells"        # a grid run with --out only
    assert study_cells_dirs(elsewhere, extra_root=tmp_path / "results") == [measured.resolve()]
    cfg = from_dict({"objective": {"mode": "supervised"}, "trainer": {"max_steps": 600}, "data": {"crop_size": 128}})
    cells = [Cell("supervised", "cirrus_like", s, cfg) for s in range(3)]
    text = format_estimate(cells, [True, False, False], cells_dir=study, machine=HERE)
    assert text.startswith("3 cells: 1 done, 2 to train (1,200 steps)")
    assert "from 1 committed cells measured on this machine (Test CPU 9000, AVX2" in text
    assert f"about {round(2 * (600 * 1.0 + CELL_OVERHEAD_S) / 60)} min on" in text
    rough = format_estimate(cells, [False] * 3, cells_dir=study, machine=dict(HERE, cpu="Elsewhere"))
    assert "rough: no committed cell was measured on this machine" in rough
