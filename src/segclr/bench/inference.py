"""Inference: a saved bundle through ``Predictor`` and the volume path of ``segclr predict``."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from segclr.bench.cli_volume import cli_volume_times
from segclr.bench.common import VARIANTS, autocast_ctx, demo_config, log, quiet, rss_mb, sync


def worker_infer(args) -> dict:
    quiet()
    import numpy as np

    from segclr.inference.predict import Predictor, inference_memory_format, prepare_for_inference
    from segclr.io.bundle import save_bundle
    from segclr.training.module import SegCLRModule
    from segclr.training.trainer import bundle_metadata

    try:  # the volume path of `segclr predict` (batched B-scans); older trees only had the per-B-scan call
        from segclr.inference.volumes import segment_volume
    except ImportError:
        segment_volume = None

    device = torch.device(args.device)
    res: dict[str, Any] = {"rss_after_import": rss_mb()}
    cfg = demo_config("segclr_uda", device.type)
    torch.manual_seed(0)
    module = SegCLRModule(cfg.to_dict())
    rng = np.random.default_rng(0)
    h, w = 496, 512
    volume = rng.random((128, h, w), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "model.safetensors"
        save_bundle(bundle, module.net.state_dict(), bundle_metadata(cfg, module, 0.0, 0))
        del module
        predictor = Predictor(bundle, device)
    work = predictor.prep.working_size(h, w)
    pm = predictor.prep.pad_multiple
    padded = (math.ceil(work[0] / pm) * pm, math.ceil(work[1] / pm) * pm)
    res.update({"bscan_hw": [h, w], "working_hw": list(work), "padded_hw": list(padded)})

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        predictor.net(torch.zeros(1, 1, *padded, device=device))
    res["flops_per_bscan"] = float(counter.get_total_flops())

    batch = 8  # segment_volume's default

    def shipped_volume(vol):
        if segment_volume is not None:
            return segment_volume(predictor, vol, batch_size=batch)
        return np.stack([predictor(img) for img in vol])

    def per_bscan(vol):
        return np.stack([predictor(img) for img in vol])

    def volume_torch_max(vol):
        """The volume path's raw masks, ``torch.max(probs, 1).indices``, without post-processing: what the
        shipped path costs beyond the network and the class pick (its retina mask, component filter)."""
        out = np.empty(vol.shape, dtype=np.uint8)
        for s0 in range(0, len(vol), batch):
            probs = predictor.probabilities_batch(vol[s0:s0 + batch])
            out[s0:s0 + batch] = torch.max(probs, 1).indices.numpy()
        return out

    res["volume_path"] = (f"segclr.inference.volumes.segment_volume(batch_size={batch})" if segment_volume
                          else "Predictor per B-scan")
    paths = {"volume49": (shipped_volume, 49), "volume128": (shipped_volume, 128),
             "bscan49": (per_bscan, 49)}
    if hasattr(predictor, "probabilities_batch"):
        paths["volume49_torch_max"] = (volume_torch_max, 49)
    assert np.array_equal(shipped_volume(volume[:9]), per_bscan(volume[:9]))  # same masks; also warm-up
    if "volume49_torch_max" in paths:  # a raw argmax: compared with the predictor's masks before post-processing
        shipped = getattr(predictor, "postprocess", False)
        predictor.postprocess = False
        try:
            assert np.array_equal(volume_torch_max(volume[:9]), per_bscan(volume[:9]))
        finally:
            predictor.postprocess = shipped
    res["postprocess"] = getattr(predictor, "applied_postprocess", None)  # in the shipped paths' times
    times: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(args.infer_reps):
        for k in list(paths) if r % 2 == 0 else list(paths)[::-1]:
            fn, n = paths[k]
            sync(device)
            t = time.perf_counter()
            fn(volume[:n])
            sync(device)
            times[k].append(time.perf_counter() - t)
        log(f"inference rep {r + 1}/{args.infer_reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    res["times_s"] = times
    res["rss_predictor"] = rss_mb()

    # Where a batch's time goes: the UNet forward alone, and the final argmax over classes.
    def per_call_ms(fn, n: int = 5) -> float:
        fn()
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            fn()
        sync(device)
        return 1e3 * (time.perf_counter() - t) / n

    x_pad = torch.rand(batch, 1, *padded, device=device)
    if hasattr(predictor, "probabilities_batch"):
        probs = predictor.probabilities_batch(volume[:batch])
    else:
        probs = torch.stack([predictor.probabilities(img) for img in volume[:batch]])
    with torch.inference_mode():
        res["per_batch_ms"] = {
            f"volume path, {batch} B-scans (shipped)": per_call_ms(lambda: shipped_volume(volume[:batch])),
            f"UNet forward, {batch} x 1 x {padded[0]} x {padded[1]}": per_call_ms(lambda: predictor.net(x_pad)),
            f"probs.argmax(1) on {tuple(probs.shape)} (before the fix)": per_call_ms(lambda: probs.argmax(1)),
            f"torch.max(probs, 1).indices on {tuple(probs.shape)} (shipped)":
                per_call_ms(lambda: torch.max(probs, 1).indices),
        }

    # The shipped volume path under the other variants (bf16 autocast / channels_last weights /
    # another stem). Another stem is an untrained network whose masks differ, and post-processing
    # time depends on the masks, so those variants are timed without post-processing: compare them
    # with the fp32 raw-mask row.
    # Compiled variants are timed in training only (a compiled volume path would time compilation).
    others = [v for v in args.variants if v != "fp32" and not VARIANTS[v].compile]
    by_variant: dict[str, list[float]] = {v: [] for v in others}
    nets = {"conv": predictor.net}
    shipped_format = inference_memory_format(device)  # the Predictor's layout (channels_last on the CPU)
    for stem in {VARIANTS[v].stem for v in others} - {"conv"}:
        torch.manual_seed(0)
        nets[stem] = prepare_for_inference(  # as Predictor does with the shipped network
            SegCLRModule(demo_config("segclr_uda", device.type, stem=stem).to_dict()).net, device)
    for r in range(args.infer_reps if others else 0):
        for v in others if r % 2 == 0 else others[::-1]:
            var = VARIANTS[v]
            predictor.net = nets[var.stem]
            predictor.net.to(memory_format=torch.channels_last if var.channels_last else shipped_format)
            shipped_pp = getattr(predictor, "postprocess", False)
            predictor.postprocess = shipped_pp and var.stem == "conv"
            with autocast_ctx(device, var.bf16):
                shipped_volume(volume[:batch])
                sync(device)
                t = time.perf_counter()
                shipped_volume(volume[:49])
                sync(device)
                by_variant[v].append(time.perf_counter() - t)
            predictor.postprocess = shipped_pp
            log(f"inference rep {r + 1}/{args.infer_reps} {v}: 49 slices {by_variant[v][-1]:.2f} s")
    predictor.net = nets["conv"].to(memory_format=shipped_format)
    res["volume49_s_by_variant"] = by_variant
    log("segclr predict through the CLI on a 49-slice volume of real B-scans (fresh interpreters)")
    res["cli"] = cli_volume_times(args.infer_reps, device.type)
    res["rss_end"] = rss_mb()
    if device.type == "cuda":
        res["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return res
