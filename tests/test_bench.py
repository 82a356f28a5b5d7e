"""`segclr bench`: the speed benchmark runs from the installed package (segclr.bench); the clone's
benchmarks/bench_train.py is a thin front end to it. Only the cheap parts run here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segclr.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_segclr_bench_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: segclr bench") and "--quick" in out and "--device" in out


def test_bench_runs_from_the_package_outside_the_clone(tmp_path):
    """`python -m segclr.bench` from another folder: no file of the clone is needed."""
    import os

    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-m", "segclr.bench", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert "default: segclr-bench" in res.stdout
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert "benchmarks/out" in res.stdout


def test_bench_options_and_cheap_parts():
    from segclr.bench import driver
    from segclr.bench.gemm import gemm_gflops
    from segclr.bench.machine import machine_info

    args = driver.parse_args(["--quick", "--no-sweep", "--variants", "fp32"], prog="segclr bench")
    assert (args.steps, args.rounds, args.variants) == (2, 2, ["fp32"]) and args.prog == "segclr bench"
    assert "--quick" in args.forward and not any(a.startswith("--out") for a in args.forward)
    with pytest.raises(SystemExit):
        driver.parse_args(["--variants", "fp64"])
    assert set(driver.WORKERS) == {"train", "infer", "memtrain", "threads"}
    rates = gemm_gflops(torch.device("cpu"), torch.float32, 64, 2)
    assert len(rates) == 2 and all(r > 0 for r in rates)
    assert machine_info(args)["device"] == "cpu"


def test_stem_variants_build_the_s2d_network_with_fewer_flops():
    from torch.utils.flop_counter import FlopCounterMode

    from segclr.bench.common import VARIANTS, demo_config
    from segclr.training.module import build_unet

    assert VARIANTS["fp32-s2d"].stem == "s2d" and VARIANTS["fp32"].stem == "conv"
    cfgs = {s: demo_config("supervised", "cpu", stem=s) for s in ("conv", "s2d")}
    assert cfgs["s2d"].model.stem == "s2d" and cfgs["conv"].model.stem == "conv"
    flops = {}
    for stem, cfg in cfgs.items():
        net = build_unet(cfg)
        assert net.stem == stem
        with FlopCounterMode(display=False) as fc:
            net(torch.zeros(1, 1, 128, 128))
        flops[stem] = fc.get_total_flops()
    # the full-resolution stage holds a sizeable share of the FLOPs (docs/performance.md: 18 % of conv)
    assert 0.5 * flops["conv"] < flops["s2d"] < 0.95 * flops["conv"]


def test_compile_variants_compile_every_top_level_block_and_skip_inference():
    from segclr.bench import driver
    from segclr.bench.common import VARIANTS, compile_blocks, demo_config
    from segclr.training.module import build_unet

    assert VARIANTS["fp32-c"].compile and VARIANTS["bf16-c"].compile and VARIANTS["bf16-c"].bf16
    assert not any(VARIANTS[v].compile for v in ("fp32", "bf16", "fp32-cl", "fp32-s2d"))
    assert driver.parse_args(["--variants", "fp32,fp32-c"]).variants == ["fp32", "fp32-c"]
    net = build_unet(demo_config("supervised", "cpu"))
    names = compile_blocks(net)  # wraps each block; nothing is compiled until a block first runs
    assert names == [n for n, _ in net.named_children()] and len(names) >= 3
    assert all(child._compiled_call_impl is not None for child in net.children())
    assert torch._dynamo.config.cache_size_limit >= 16 * len(names)


def test_each_worker_result_is_kept_as_soon_as_it_finishes(tmp_path, monkeypatch):
    import json
    import subprocess as sp

    from segclr.bench import driver

    def fake_run(cmd, env=None):
        Path(cmd[cmd.index("--_result") + 1]).write_text(json.dumps({"ms_per_step": 12.5}))
        return sp.CompletedProcess(cmd, 0)

    monkeypatch.setattr(driver.subprocess, "run", fake_run)
    args = driver.parse_args(["--out", str(tmp_path / "b"), "--quick"])
    out = driver.run_worker("train", args)
    kept = json.loads((tmp_path / "b" / "worker_train.json").read_text())
    assert kept["ms_per_step"] == 12.5 == out["ms_per_step"] and kept["wall_s"] >= 0


def test_cli_volume_times_a_real_volume_through_fresh_interpreters(tmp_path, monkeypatch):
    from segclr.bench import cli_volume
    from segclr.io.volumes import read_volume

    shape = cli_volume.real_volume(tmp_path / "v.mha")
    vol = read_volume(tmp_path / "v.mha")
    assert shape == vol.shape and shape[0] == 49 and vol.array.dtype == "uint8" and vol.array.max() > 100
    assert vol.spacing_mm == pytest.approx(cli_volume.DUKE_SPACING_MM)

    calls = []

    def fake_timed(cmd, env):
        calls.append(cmd)
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        return 0.5 if cmd[1] == "-c" else (2.0 if "--no-postprocess" in cmd else 3.0)

    monkeypatch.setattr(cli_volume, "_timed", fake_timed)
    out = cli_volume.cli_volume_times(reps=2)
    assert len(calls) == 1 + 3 * 2  # one warm-up predict, then 3 runs per rep
    predict = [c for c in calls if "predict" in c]
    assert len(predict) == 5 and all(c[1:4] == ["-m", "segclr.cli", "predict"] for c in predict)
    assert [c for c in calls if c not in predict] == [[sys.executable, "-c", cli_volume.STARTUP]] * 2
    assert all("--checkpoint" not in c and c[c.index("--input") + 1].endswith("volume49.mha") for c in predict)
    assert (out["startup_s"], out["predict_s"], out["predict_no_postprocess_s"]) == (0.5, 3.0, 2.0)
    assert out["beyond_startup_s"] == 2.5 and out["shape"] == list(shape)


def test_cli_volume_failure_names_the_command():
    from segclr.bench.cli_volume import _timed

    with pytest.raises(RuntimeError, match="exit code 3"):
        _timed([sys.executable, "-c", "import sys; sys.exit(3)"], {})


def test_fixed_malloc_is_forwarded_to_the_workers_and_applies_on_glibc():
    import platform

    from segclr.bench import driver
    from segclr.inference.allocator import keep_freed_memory, minor_faults

    assert "--malloc=fixed" in driver.parse_args(["--quick"]).forward  # as the segclr commands run
    assert "--malloc=default" in driver.parse_args(["--malloc", "default"]).forward
    with pytest.raises(SystemExit):
        driver.parse_args(["--malloc", "jemalloc"])
    code = ("from segclr.inference.allocator import keep_freed_memory as k; import sys; "
            "sys.exit(0 if k() and k() else 3)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == (0 if platform.libc_ver()[0] == "glibc" else 3), res.stderr
    assert minor_faults() > 0 and callable(keep_freed_memory)


def test_cli_volume_timing_records_the_child_peak_memory():
    from segclr.bench.cli_volume import _timed

    peaks = []
    wall = _timed([sys.executable, "-c", "b = bytearray(200 << 20)"], {}, peaks)
    assert wall > 0 and len(peaks) == 1 and peaks[0] >= 200
