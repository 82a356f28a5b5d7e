"""Summary of the workers' results (rates, ratios, verdicts against TARGETS) and its Markdown, bench.md."""

from __future__ import annotations

from segclr.bench.common import MODES, TARGETS, VARIANTS, median


def summarize(args, machine: dict, train: dict, infer: dict, mem: dict, sweep: list[dict], load: dict) -> dict:
    runs = train["runs"]
    rows = []
    step, step_min, step_cpu = {}, {}, {}
    for key, r in runs.items():
        if key.startswith("data/"):
            continue
        v, m, p = key.split("/")
        t = median(r["periods_s"])
        step[key], step_min[key], step_cpu[key] = t, min(r["periods_s"]), median(r["cpu_periods_s"])
        lab, enc = train["images_per_step"][m]
        flops = train.get("flops_by_variant", {}).get(v, train["flops_per_step"])[m]
        gf = flops / t / 1e9
        limit = train["gemm"]["bf16" if VARIANTS[v].bf16 and "bf16" in train["gemm"] else "fp32"]["best_gflops"]
        rows.append({
            "variant": v, "mode": m, "path": p, "step_ms": 1e3 * t,
            "step_ms_min": 1e3 * step_min[key], "cpu_ms": 1e3 * step_cpu[key], "steps_timed": len(r["periods_s"]),
            "labeled_images_per_s": lab / t, "encoded_images_per_s": enc / t,
            "gflop_per_step": flops / 1e9, "model_gflops": gf, "gemm_fraction": gf / limit,
            "model_gflops_per_cpu_s": flops / step_cpu[key] / 1e9,
            **({"in_hooks_ms": 1e3 * median(r["in_hooks_s"]),
                # Lightning's loop between on_train_batch_end and the next on_train_batch_start.
                "outside_hooks_ms": 1e3 * median([a - b for a, b in zip(r["periods_s"], r["in_hooks_s"])])}
               if "in_hooks_s" in r else {}),
        })
    v0 = args.variants[0]
    overhead = {}
    for v in args.variants:
        for m in MODES:
            a, b = step[f"{v}/{m}/lightning"], step[f"{v}/{m}/plain"]
            per_round = [rd[f"{v}/{m}/plain"] / rd[f"{v}/{m}/lightning"] for rd in train["per_round_median_s"]]
            k = (f"{v}/{m}/lightning", f"{v}/{m}/plain")
            outside = next(r.get("outside_hooks_ms") for r in rows
                           if (r["variant"], r["mode"], r["path"]) == (v, m, "lightning"))
            overhead[f"{v}/{m}"] = {"ratio": b / a, "per_round": per_round, "extra_ms": 1e3 * (a - b),
                                    "outside_hooks_ms": outside,
                                    "ratio_min": step_min[k[1]] / step_min[k[0]],
                                    "ratio_cpu": step_cpu[k[1]] / step_cpu[k[0]]}
    data = {}
    for m in MODES:
        t = median(runs[f"data/{m}"]["periods_s"])
        lab, enc = train["images_per_step"][m]
        data[m] = {"step_ms": 1e3 * t, "cpu_ms": 1e3 * median(runs[f"data/{m}"]["cpu_periods_s"]),
                   "images_per_s": enc / t,
                   "multiple_of_training": step[f"{v0}/{m}/lightning"] / t,
                   "per_round": [rd[f"{v0}/{m}/lightning"] / rd[f"data/{m}"] for rd in train["per_round_median_s"]]}
    seg_over_sup = {}
    for v in args.variants:
        for p in ("lightning", "plain"):
            seg_over_sup[f"{v}/{p}"] = {
                "ratio": step[f"{v}/segclr_uda/{p}"] / step[f"{v}/supervised/{p}"],
                "ratio_min": step_min[f"{v}/segclr_uda/{p}"] / step_min[f"{v}/supervised/{p}"],
                "ratio_cpu": step_cpu[f"{v}/segclr_uda/{p}"] / step_cpu[f"{v}/supervised/{p}"],
                "per_round": [rd[f"{v}/segclr_uda/{p}"] / rd[f"{v}/supervised/{p}"]
                              for rd in train["per_round_median_s"]],
            }
    flop_ratio = train["flops_per_step"]["segclr_uda"] / train["flops_per_step"]["supervised"]
    it = {k: median(v) for k, v in infer["times_s"].items()}
    t49, t128 = it["volume49"], it["volume128"]
    inference = {
        "bscan_hw": infer["bscan_hw"], "padded_hw": infer["padded_hw"], "volume_path": infer["volume_path"],
        "volume49_s": t49, "volume128_s": t128, "bscans_per_s": 128 / t128,
        "bscan49_s": it["bscan49"], "volume49_torch_max_s": it.get("volume49_torch_max"),
        "gflop_per_bscan": infer["flops_per_bscan"] / 1e9,
        "model_gflops": infer["flops_per_bscan"] * 128 / t128 / 1e9,
        "per_batch_ms": infer["per_batch_ms"],
        "volume49_s_by_variant": {v: median(ts) for v, ts in infer["volume49_s_by_variant"].items()},
        "samples": infer["times_s"],
        "cli": infer.get("cli"),
    }
    after_data = mem["rss_after_data"]
    fit_peak = mem["rss_end"].get("hwm_mb") if mem["peak_reset"] else None
    memory = {
        "train_peak_mb": max(after_data.get("hwm_mb", after_data["peak_mb"]), fit_peak or mem["rss_end"]["peak_mb"]),
        "train_data_setup_peak_mb": after_data.get("hwm_mb", after_data["peak_mb"]),
        "train_after_data_mb": after_data.get("rss_mb"),
        "train_fit_peak_mb": fit_peak,
        "train_after_import_mb": mem["rss_after_import"]["rss_mb"],
        "train_fit_steps": mem["steps"], "train_fit_s": mem["fit_s"],
        "infer_peak_mb": infer["rss_predictor"]["peak_mb"],
        "infer_after_import_mb": infer["rss_after_import"]["rss_mb"],
        "infer_peak_with_variants_mb": infer["rss_end"]["peak_mb"],
        "bench_train_process_peak_mb": train["rss_end"]["peak_mb"],
        **({"train_cuda_max_allocated_mb": mem["cuda_max_allocated_mb"]} if "cuda_max_allocated_mb" in mem else {}),
        **({"infer_cuda_max_allocated_mb": infer["cuda_max_allocated_mb"]} if "cuda_max_allocated_mb" in infer else {}),
        **({"bench_train_cuda_max_allocated_mb": train["cuda_max_allocated_mb"]}
           if "cuda_max_allocated_mb" in train else {}),
    }
    sweep_out = []
    for s in sweep:
        entry = {"omp_wait_policy": s["omp_wait_policy"], "rows": []}
        for key, ts in s["step_s"].items():
            th, m = key.split("/")
            t = median(ts)
            gl = max(s["gemm_gflops"][th])
            entry["rows"].append({"threads": int(th), "mode": m, "step_ms": 1e3 * t,
                                  "model_gflops": train["flops_per_step"][m] / t / 1e9, "gemm_gflops": gl,
                                  "gemm_fraction": train["flops_per_step"][m] / t / 1e9 / gl})
        sweep_out.append(entry)

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    ov = [overhead[f"{v0}/{m}"]["ratio"] for m in MODES]
    ov_cpu = [overhead[f"{v0}/{m}"]["ratio_cpu"] for m in MODES]
    so_cpu = seg_over_sup[f"{v0}/lightning"]["ratio_cpu"]
    lrows = [r for r in rows if r["variant"] == v0 and r["path"] == "lightning"]
    gf = [r["gemm_fraction"] for r in lrows]
    # Per CPU-second against the GEMM limit per thread (the limit was measured with all threads busy).
    threads = machine["torch_threads"]
    gf_cpu = [r["model_gflops_per_cpu_s"] / (r["model_gflops"] / r["gemm_fraction"] / threads) for r in lrows]
    dm = [data[m]["multiple_of_training"] for m in MODES]
    so = seg_over_sup[f"{v0}/lightning"]["ratio"]
    peak_gb = memory["train_peak_mb"] / 1024
    targets = [
        {"target": "framework overhead: Lightning/plain throughput >= 0.95",
         "measured": ", ".join(f"{m} {x:.3f}" for m, x in zip(MODES, ov)),
         "measured_cpu": ", ".join(f"{m} {x:.3f}" for m, x in zip(MODES, ov_cpu)),
         "verdict_cpu": verdict(min(ov_cpu) >= TARGETS["overhead_ratio_min"]),
         "verdict": verdict(min(ov) >= TARGETS["overhead_ratio_min"]), "worst": min(ov),
         "margin": f"{min(ov) - TARGETS['overhead_ratio_min']:+.3f}"},
        {"target": "training model FLOP/s >= 50 % of the fp32 GEMM limit",
         "measured": ", ".join(f"{r['mode']} {100 * x:.1f} %" for r, x in zip(lrows, gf)),
         "measured_cpu": ", ".join(f"{r['mode']} {100 * x:.1f} %" for r, x in zip(lrows, gf_cpu)),
         "verdict_cpu": verdict(min(gf_cpu) >= TARGETS["gemm_fraction_min"]),
         "verdict": verdict(min(gf) >= TARGETS["gemm_fraction_min"]), "worst": min(gf),
         "margin": f"{TARGETS['gemm_fraction_min'] / min(gf):.1f}x short" if min(gf) < TARGETS["gemm_fraction_min"]
         else f"{min(gf) / TARGETS['gemm_fraction_min']:.2f}x the target"},
        {"target": "data path >= 5x training throughput",
         "measured": ", ".join(f"{m} {x:.1f}x" for m, x in zip(MODES, dm)),
         "verdict": verdict(min(dm) >= TARGETS["data_multiple_min"]), "worst": min(dm),
         "margin": f"{min(dm) / TARGETS['data_multiple_min']:.2f}x the target"},
        {"target": "SegCLR UDA step <= 2.5x the supervised step",
         "measured": f"{so:.2f}x (model FLOP ratio {flop_ratio:.2f}x)",
         "measured_cpu": f"{so_cpu:.2f}x", "verdict_cpu": verdict(so_cpu <= TARGETS["segclr_over_sup_max"]),
         "verdict": verdict(so <= TARGETS["segclr_over_sup_max"]), "worst": so,
         "margin": f"{so - TARGETS['segclr_over_sup_max']:+.2f}x"},
        {"target": "49-slice volume inference < 2 s",
         "measured": f"{t49:.2f} s" + (f" (without post-processing: {inference['volume49_torch_max_s']:.2f} s)"
                                      if inference["volume49_torch_max_s"] else ""),
         "verdict": verdict(t49 < TARGETS["volume49_s_max"]), "worst": t49,
         "margin": f"{t49 - TARGETS['volume49_s_max']:+.2f} s"},
        {"target": "peak training memory < 4 GB (demo config, real fit)",
         "measured": f"{peak_gb:.2f} GB", "verdict": verdict(peak_gb < TARGETS["train_peak_gb_max"]),
         "worst": peak_gb, "margin": f"{peak_gb - TARGETS['train_peak_gb_max']:+.2f} GB"},
    ]
    return {
        "command": " ".join([args.prog, *args.cli]),
        "machine": machine,
        "load": load,
        "settings": {"rounds": args.rounds, "warmup_steps": args.warmup, "timed_steps_per_run": args.steps,
                     "variants": args.variants, "quick": args.quick,
                     "shapes": "batch 8, crop 128, UNet base 8 depth 4, Cch head, Pa pairs, "
                               "unlabeled spectralis + cirrus_like"},
        "gemm": train["gemm"],
        "flops_per_step": train["flops_per_step"],
        "flops_by_variant": train.get("flops_by_variant", {}),
        "images_per_step": {m: {"labeled": a, "encoded": b} for m, (a, b) in train["images_per_step"].items()},
        "training": rows,
        "framework_overhead": overhead,
        "data_path": data,
        "segclr_over_supervised": {**seg_over_sup, "flop_ratio": flop_ratio},
        "inference": inference,
        "memory": memory,
        "threads_sweep": sweep_out,
        "profile": train.get("profile"),
        "targets": targets,
        "data_setup_s": train["data_setup_s"],
        "worker_wall_s": {"train": train["wall_s"], "infer": infer["wall_s"], "memtrain": mem["wall_s"],
                          **{f"threads_{s_['omp_wait_policy']}": s_["wall_s"] for s_ in sweep}},
        "worker_others_cores": {"train": train["others_cores"], "infer": infer["others_cores"],
                                "memtrain": mem["others_cores"],
                                **{f"threads_{s_['omp_wait_policy']}": s_["others_cores"] for s_ in sweep}},
        "raw": {"train_runs": train["runs"], "per_round_median_s": train["per_round_median_s"]},
    }


def render_md(s: dict) -> str:
    m = s["machine"]
    L = []
    L.append(f"# segclr benchmark ({m['device']})\n")
    L.append(f"`{s['command']}`\n")
    dev = m.get("gpu", m["cpu"])
    cd = m.get("cpu_details", {})
    L.append(f"Machine: {dev}; {m['logical_cpus']} logical CPUs ({cd.get('cpu cores', '?')} cores, "
             f"{cd.get('siblings', '?')} logical per package; flags {', '.join(cd.get('flags', [])) or '?'}); "
             f"torch {m['torch']} ({m['torch_threads']} threads, {cd.get('parallel_backend')}, {cd.get('onednn')}), "
             f"Lightning {m['lightning']}, Python {m['python']}; OMP_WAIT_POLICY={m['env']['OMP_WAIT_POLICY']}.")
    ld = s["load"]
    L.append(f"Load average before/after: {ld['loadavg_start'][0]:.2f} / {ld['loadavg_end'][0]:.2f}; "
             f"CPU used by other processes during the run: {ld['others_cores']:.2f} cores on average "
             f"(machine busy {ld['machine_busy_cores']:.2f} cores, this benchmark {ld['self_cores']:.2f}).")
    ww = s["worker_wall_s"]
    L.append(f"Run wall time {ld['wall_s']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in ww.items()) + "); "
             "cores used by other processes during each part: " + ", ".join(
                 f"{k} {v:.2f}" for k, v in s["worker_others_cores"].items()) + ".")
    st = s["settings"]
    L.append(f"Shapes: {st['shapes']}. {st['rounds']} rounds x {st['timed_steps_per_run']} timed steps per path "
             f"after {st['warmup_steps']} warm-up; medians.\n")
    L.append("## GEMM limit\n")
    L.append("| dtype | n | best GFLOP/s | median GFLOP/s |\n|---|---|---|---|")
    for dt, g in s["gemm"].items():
        L.append(f"| {dt} | {g['n']} | {g['best_gflops']:.1f} | {g['median_gflops']:.1f} |")
    L.append("\n## Training step\n")
    fl = s["flops_per_step"]
    ips = s["images_per_step"]
    L.append("Model FLOPs per step (forward+backward, FlopCounterMode): " + ", ".join(
        f"{k} {v / 1e9:.2f} GFLOP ({ips[k]['labeled']} labeled, {ips[k]['encoded']} encoded images)"
        for k, v in fl.items()) + ".\n")
    for v, by_mode in s.get("flops_by_variant", {}).items():
        if by_mode != fl:  # a variant with another stem is another network
            L.append(f"Variant {v} is another network: "
                     + ", ".join(f"{m} {f / 1e9:.2f} GFLOP" for m, f in by_mode.items()) + " per step.\n")
    L.append("Wall ms/step is the median (min) over all timed steps; CPU ms is the process CPU time per step "
             "(all threads, spin-waiting included). Throughput and GFLOP/s use the median wall time.\n")
    L.append("| variant | mode | path | wall ms/step median (min) | CPU ms/step | labeled img/s | encoded img/s "
             "| model GFLOP/s | % of GEMM limit | GFLOP per CPU-s |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in s["training"]:
        L.append(f"| {r['variant']} | {r['mode']} | {r['path']} | {r['step_ms']:.1f} ({r['step_ms_min']:.1f}) | "
                 f"{r['cpu_ms']:.1f} | {r['labeled_images_per_s']:.2f} | {r['encoded_images_per_s']:.2f} | "
                 f"{r['model_gflops']:.2f} | {100 * r['gemm_fraction']:.1f} | {r['model_gflops_per_cpu_s']:.2f} |")
    L.append("\nFramework overhead = Lightning throughput / plain-loop throughput "
             "(= plain step time / Lightning step time).\n")
    L.append("| variant/mode | median wall | min wall | median CPU | per round (median wall) "
             "| Lightning extra ms/step | Lightning loop outside the batch hooks ms/step |")
    L.append("|---|---|---|---|---|---|---|")
    for k, o in s["framework_overhead"].items():
        L.append(f"| {k} | {o['ratio']:.3f} | {o['ratio_min']:.3f} | {o['ratio_cpu']:.3f} | "
                 f"{', '.join(f'{x:.3f}' for x in o['per_round'])} | {o['extra_ms']:+.1f} | "
                 f"{o['outside_hooks_ms']:.2f} |")
    L.append("\n| SegCLR UDA / supervised step time | median wall | min wall | median CPU | per round |")
    L.append("|---|---|---|---|---|")
    for k, o in s["segclr_over_supervised"].items():
        if k != "flop_ratio":
            L.append(f"| {k} | {o['ratio']:.2f} | {o['ratio_min']:.2f} | {o['ratio_cpu']:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in o['per_round'])} |")
    L.append(f"| model FLOP ratio | {s['segclr_over_supervised']['flop_ratio']:.2f} | | | |")
    L.append("\n## Data path (CombinedLoader + collation + BatchAugment, no model)\n")
    L.append("| mode | wall ms/step | CPU ms/step | images/s | x training throughput (Lightning) | per round |")
    L.append("|---|---|---|---|---|---|")
    for k, d in s["data_path"].items():
        L.append(f"| {k} | {d['step_ms']:.1f} | {d['cpu_ms']:.1f} | {d['images_per_s']:.1f} | "
                 f"{d['multiple_of_training']:.1f} | "
                 f"{', '.join(f'{x:.1f}' for x in d['per_round'])} |")
    i = s["inference"]
    L.append(f"\n## Inference (volume path: `{i['volume_path']}`)\n")
    L.append(f"B-scan {i['bscan_hw'][0]}x{i['bscan_hw'][1]} -> UNet input {i['padded_hw'][0]}x{i['padded_hw'][1]}, "
             f"{i['gflop_per_bscan']:.2f} GFLOP per B-scan (forward).\n")
    L.append("| B-scans/s | 49-slice volume s | 128-slice volume s | model GFLOP/s | 49 B-scans one by one "
             "(`Predictor.__call__`) s |")
    L.append("|---|---|---|---|---|")
    L.append(f"| {i['bscans_per_s']:.1f} | {i['volume49_s']:.2f} | {i['volume128_s']:.2f} | {i['model_gflops']:.1f} | "
             f"{i['bscan49_s']:.2f} |")
    L.append("\n| one batch of the volume path | ms |\n|---|---|")
    for k, v in i["per_batch_ms"].items():
        L.append(f"| {k} | {v:.1f} |")
    L.append("\n| 49-slice volume, volume path | s |\n|---|---|")
    L.append(f"| fp32 (shipped) | {i['volume49_s']:.2f} |")
    if i["volume49_torch_max_s"] is not None:
        L.append(f"| fp32, raw masks without post-processing (retina mask, component filter) | "
                 f"{i['volume49_torch_max_s']:.2f} |")
    for v, t in i["volume49_s_by_variant"].items():
        raw = VARIANTS[v].stem != "conv" if v in VARIANTS else False
        L.append(f"| {v} (variant{'; untrained network, raw masks: compare with the raw-mask row' if raw else ''}) "
                 f"| {t:.2f} |")
    if i.get("cli"):
        c = i["cli"]
        L.append(f"\n### Through the CLI: `{c['command']}`\n")
        L.append(f"A {c['shape'][0]}-slice volume of real B-scans ({c['shape'][1]}x{c['shape'][2]}, embedded Duke "
                 "Spectralis patients 1-5, Duke spacing), each run a fresh interpreter, median of "
                 f"{len(c['samples_s']['predict'])}.\n")
        L.append("| run | s |\n|---|---|")
        L.append("| start-up: a fresh interpreter importing what predict imports (torch, segclr) | "
                 f"{c['startup_s']:.2f} |")
        L.append(f"| `segclr predict`, start-up included | {c['predict_s']:.2f} |")
        L.append(f"| `segclr predict`, beyond start-up | {c['beyond_startup_s']:.2f} |")
        L.append(f"| `segclr predict --no-postprocess`, start-up included | {c['predict_no_postprocess_s']:.2f} |")
    mm = s["memory"]
    L.append("\n## Peak resident memory (ru_maxrss, fresh process each)\n")
    L.append("| process | peak MB | RSS after imports MB |\n|---|---|---|")
    L.append(f"| training: real `fit`, demo SegCLR UDA config, {mm['train_fit_steps']} steps (whole process) | "
             f"{mm['train_peak_mb']:.0f} | {mm['train_after_import_mb']:.0f} |")
    L.append(f"| - of which rendering the domains (DomainBank, before fit) | {mm['train_data_setup_peak_mb']:.0f} | |")
    if mm["train_fit_peak_mb"] is not None:
        L.append(f"| - of which `fit` itself (peak mark reset after rendering; RSS then "
                 f"{mm['train_after_data_mb']:.0f} MB) | {mm['train_fit_peak_mb']:.0f} | |")
    L.append(f"| inference: 128-slice volume (volume path) and 49 B-scans one by one | {mm['infer_peak_mb']:.0f} | "
             f"{mm['infer_after_import_mb']:.0f} |")
    L.append(f"| this benchmark's training process (all rows above) | {mm['bench_train_process_peak_mb']:.0f} | |")
    for k in ("train_cuda_max_allocated_mb", "infer_cuda_max_allocated_mb", "bench_train_cuda_max_allocated_mb"):
        if k in mm:
            L.append(f"| GPU: torch.cuda.max_memory_allocated, {k.replace('_cuda_max_allocated_mb', '')} | "
                     f"{mm[k]:.0f} | |")
    if s["threads_sweep"]:
        L.append("\n## Threads sweep (plain loop, synthetic batches of the same shapes)\n")
        L.append("| OMP_WAIT_POLICY | threads | mode | ms/step | model GFLOP/s | GEMM GFLOP/s at these threads "
                 "| % of GEMM |")
        L.append("|---|---|---|---|---|---|---|")
        for e in s["threads_sweep"]:
            for r in sorted(e["rows"], key=lambda r: (r["mode"], r["threads"])):
                L.append(f"| {e['omp_wait_policy']} | {r['threads']} | {r['mode']} | {r['step_ms']:.1f} | "
                         f"{r['model_gflops']:.2f} | {r['gemm_gflops']:.1f} | {100 * r['gemm_fraction']:.1f} |")
    L.append("\n## Targets\n")
    L.append("Verdicts on median wall time; where a CPU-time figure exists it is shown with its own verdict "
             "(for the GEMM fraction: model FLOPs per CPU-second over the GEMM limit per thread).\n")
    L.append("| target | measured (wall) | verdict | margin | measured (CPU time) | verdict (CPU time) |")
    L.append("|---|---|---|---|---|---|")
    for t in s["targets"]:
        L.append(f"| {t['target']} | {t['measured']} | {t['verdict']} | {t['margin']} | "
                 f"{t.get('measured_cpu', '')} | {t.get('verdict_cpu', '')} |")
    prof = s.get("profile")
    if prof:
        pu, ps = prof["segclr_uda"], prof["supervised"]
        L.append(f"\n## Profile (plain loop, {pu['steps']} steps each, torch.profiler, self time per step)\n")
        L.append("| op family | supervised ms | % | SegCLR UDA ms | % | UDA / supervised |\n|---|---|---|---|---|---|")
        for g in pu["groups_ms_per_step"]:
            a, b = ps["groups_ms_per_step"][g], pu["groups_ms_per_step"][g]
            L.append(f"| {g} | {a:.1f} | {100 * a / ps['total_self_ms_per_step']:.1f} | {b:.1f} | "
                     f"{100 * b / pu['total_self_ms_per_step']:.1f} | {b / a if a else float('nan'):.2f} |")
        a, b = ps["total_self_ms_per_step"], pu["total_self_ms_per_step"]
        L.append(f"| total | {a:.1f} | 100 | {b:.1f} | 100 | {b / a:.2f} |")
        cb = pu.get("conv_by_input_size") or {}
        if cb:
            tot = sum(d["fwd_ms"] + d["bwd_ms"] for d in cb.values()) or float("nan")
            totf = sum(d["fwd_gflop"] for d in cb.values()) or float("nan")
            L.append("\nConvolutions of the SegCLR UDA step by input size (forward FLOPs from the profiler's "
                     "estimate; times include the op's children; non-square sizes are BatchAugment's separable "
                     "blur, which has no backward):\n")
            L.append("| input HxW | fwd GFLOP/step | % of conv FLOPs | fwd ms/step | fwd GFLOP/s | bwd ms/step "
                     "| % of conv time |\n|---|---|---|---|---|---|---|")
            for res_, d in cb.items():
                rate = d["fwd_gflop"] / (d["fwd_ms"] / 1e3) if d["fwd_ms"] else float("nan")
                L.append(f"| {res_} | {d['fwd_gflop']:.2f} | {100 * d['fwd_gflop'] / totf:.1f} | "
                         f"{d['fwd_ms']:.1f} | {rate:.1f} | {d['bwd_ms']:.1f} | "
                         f"{100 * (d['fwd_ms'] + d['bwd_ms']) / tot:.1f} |")
        L.append(f"\nTop 10 ops of the SegCLR UDA step (sorted by {pu['sort_key']}, {pu['steps']} steps):\n")
        L.append("```\n" + pu["table"].rstrip() + "\n```")
    return "\n".join(L) + "\n"
