"""The study's report: mean +- std tables over seeds, paired tests, figures.

Everything here reads ``results.csv`` / ``per_case.csv`` only, so the report can be
regenerated from those files (``segclr experiment ... --report-only``).
"""

from __future__ import annotations

import csv
import math
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from segclr.config import DataConfig
from segclr.evaluation.report import save_figure
from segclr.experiment.spec import base_data
from segclr.experiment.stats import (false_positive_scans, fmt_p, fmt_summary, paired_test, pooled_seed_test,
                                     seed_level_test, seed_summary)
from segclr.io.atomic import atomic_write_text


PS_NOTE = ("*Ps on this benchmark:* the 11 annotated Duke B-scans of a patient are not contiguous in the "
           "original scan, so Ps \"neighbours\" (within `data.pair_distance` of 11 slices) can lie far apart. "
           "On a user's own volumes (`data.dataset`), Ps pairs are true neighbouring B-scans.")


def read_csv(path: Path) -> list[dict]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def _f(x: str | float) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def summarize(rows: list[dict], metric: str = "dice_mean") -> dict[tuple[str, str, str], dict]:
    """(target_device, method, domain) -> stats.seed_summary over seeds (foreground classes averaged).

    Per seed the classes are averaged first (NaN-skipping); std is the sample std (ddof=1),
    0 for a single seed.
    """
    per_seed: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = _f(r[metric])
        if not math.isnan(v):
            per_seed[(r["target_device"], r["method"], r["domain"])][int(r["seed"])].append(v)
    return {key: seed_summary({seed: float(np.mean(v)) for seed, v in seeds.items()})
            for key, seeds in per_seed.items()}


def _domains(rows: list[dict], target: str) -> list[str]:
    found = sorted({r["domain"] for r in rows if r["target_device"] == target})
    ordered = [d for d in ("spectralis", target) if d in found]
    return ordered + [d for d in found if d not in ordered]


def _methods(rows: list[dict], target: str) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in rows if r["target_device"] == target))


def method_table(summary: dict, target: str, methods: list[str], domains: list[str]) -> str:
    lines = ["| method | " + " | ".join(f"{d}{' (target)' if d == target else ''}" for d in domains) + " |",
             "|---|" + "---|" * len(domains)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(fmt_summary(summary.get((target, m, d))) for d in domains) + " |")
    return "\n".join(lines)


def ablation_table(summary: dict, target: str, methods: list[str]) -> str | None:
    """Head x pair table from methods named ``<prefix>_<head>_<pairs>`` (the grid's names)."""
    cells = {}
    for m in methods:
        parts = m.rsplit("_", 2)
        if len(parts) == 3 and parts[1] in ("ch", "pool") and parts[2] in ("a", "s", "sa"):
            cells[(parts[1], parts[2])] = summary.get((target, m, target))
    if not cells:
        return None
    pairs = [p for p in ("a", "s", "sa") if any(k[1] == p for k in cells)]
    names = {"a": "Pa", "s": "Ps", "sa": "Ps+a"}
    lines = ["| head | " + " | ".join(names[p] for p in pairs) + " |", "|---|" + "---|" * len(pairs)]
    for head, label in (("ch", "Cch"), ("pool", "Cpool")):
        lines.append(f"| {label} | " + " | ".join(fmt_summary(cells.get((head, p))) for p in pairs) + " |")
    return "\n".join(lines)


def plot_bars(summary: dict, target: str, methods: list[str], domains: list[str], out_png: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(methods) * len(domains) / 2), 3.8))
    width = 0.8 / max(1, len(domains))
    x = np.arange(len(methods))
    for i, d in enumerate(domains):
        stats = [summary.get((target, m, d)) for m in methods]
        means = [s["mean"] if s else np.nan for s in stats]
        stds = [s["std"] if s else 0 for s in stats]
        ax.bar(x + i * width, means, width, yerr=stds, capsize=2, label=d)
    ax.set_xticks(x + width * (len(domains) - 1) / 2, methods, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("Dice (mean over B-scans)")
    ax.set_ylim(0, 1)
    ax.set_title(f"target device {target}: mean ± std over seeds")
    ax.legend(fontsize=8)
    save_figure(fig, out_png)


def plot_amount(summary: dict, target: str, amount: dict, domains: list[str], out_png: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    xs = sorted(int(k) for k in amount)
    for d in domains:
        stats = [summary.get((target, amount[k] if k in amount else amount[str(k)], d)) for k in xs]
        ax.errorbar(xs, [s["mean"] if s else np.nan for s in stats], yerr=[s["std"] if s else 0 for s in stats],
                    marker="o", capsize=3, label=d)
    ax.set_xticks(xs)
    ax.set(xlabel="unlabeled target patients", ylabel="Dice", title=f"amount of {target} data", ylim=(0, 1))
    ax.legend(fontsize=8)
    save_figure(fig, out_png)


def _false_positive_section(cases: list[dict], target: str, methods: list[str], domains: list[str]) -> str:
    lines = ["| method | " + " | ".join(domains) + " |", "|---|" + "---|" * len(domains)]
    empty = None
    for m in methods:
        cells = []
        for d in domains:
            fp = false_positive_scans(cases, m, target, d)
            empty = empty or fp
            cells.append("n/a" if fp is None else f"{fp['mean']:.1f} of {fp['of']}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if empty is None:
        return ""
    return ("\n### False-positive B-scans\n\nTest B-scans whose reference has no fluid but whose prediction "
            "has some (mean over seeds). These B-scans are left out of every paired comparison below, for "
            "both methods alike.\n\n" + "\n".join(lines) + "\n")


def comparisons(spec: dict, methods: list[str]) -> list[tuple[str, str]]:
    """(method, against) pairs: every method against the spec's ``baseline`` (method - baseline),
    or the spec's ``reference`` against every other method (reference - other); then the spec's
    ``compare`` pairs whose two methods both have results."""
    pairs: list[tuple[str, str]] = []
    if spec.get("baseline") in methods:
        pairs = [(m, spec["baseline"]) for m in methods if m != spec["baseline"]]
    elif spec.get("reference") in methods:
        pairs = [(spec["reference"], m) for m in methods if m != spec["reference"]]
    for a, b in spec.get("compare") or []:
        if a in methods and b in methods and (a, b) not in pairs:
            pairs.append((a, b))
    return pairs


SEED_HEADER = ["| comparison | seeds | mean diff | 95 % t interval | 95 % bootstrap CI | wins/losses | sign p | "
               "Wilcoxon p |", "|---|---|---|---|---|---|---|---|"]


def _seed_line(a: str, b: str, t: dict) -> str:
    one = t["n_seeds"] < 2
    ci = "n/a (1 seed)" if one else f"[{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]"
    ti = "n/a (1 seed)" if one else f"[{t['t_low']:+.3f}, {t['t_high']:+.3f}]"
    return (f"| {a} − {b} | {t['n_seeds']} | {t['mean_diff']:+.3f} | {ti} | {ci} | "
            f"{t['wins']}/{t['losses']} | {fmt_p(t['sign_p'])} | {fmt_p(t['wilcoxon_p'])} |")


def _paired_section(cases: list[dict], target: str, pairs: list[tuple[str, str]], domain: str,
                    rows: list[dict] | None = None, extra: bool = False) -> str:
    """Paired comparisons on ``domain`` (the target device, or the source for a validation study). ``extra``
    marks a repeat on another domain (the spec's ``compare_on``): its sub-headings then name the domain."""
    on = f" on `{domain}`" if extra else ""
    seed_lines, pooled_lines = list(SEED_HEADER), list(SEED_HEADER)
    scan_lines = ["| comparison | pairs | mean diff | median diff | wins/losses | Wilcoxon p |",
                  "|---|---|---|---|---|---|"]
    for a, b in pairs:
        t = seed_level_test(cases, target, a, b, domain)
        if t:
            seed_lines.append(_seed_line(a, b, t))
        pooled = pooled_seed_test(rows, target, a, b, domain) if rows else None
        if pooled:
            pooled_lines.append(_seed_line(a, b, pooled))
        s = paired_test(cases, target, a, b, domain)
        if s:
            scan_lines.append(f"| {a} − {b} | {s['n']} | {s['mean_diff']:+.3f} | {s['median_diff']:+.3f} | "
                              f"{s['wins']}/{s['losses']} | {fmt_p(s['p'])} |")
    where = "the target domain" if domain == target else f"`{domain}`"
    pooled_part = (f"\n\n### Pooled Dice{on}, over seeds\n\nThe same seed-level test on pooled Dice (every test "
                   "B-scan of the domain counted as one volume, false positives included).\n\n"
                   + "\n".join(pooled_lines)) if len(pooled_lines) > 2 else ""
    return (f"\n### Paired comparison on {where} (primary: over seeds)\n\nPer seed, each method's "
            "mean Dice over the test B-scans whose reference has fluid; the per-seed differences (first minus "
            "second: positive favours the first) over the seeds both methods ran, with a 95 % Student-t "
            "interval, a 95 % percentile bootstrap interval (with 3-5 seeds it is about [min, max] of the "
            "differences and too narrow: read the t interval), a sign test and a Wilcoxon signed-rank test. "
            "Seeds are the independent units: "
            "the smallest two-sided sign-test p with n seeds is 2^(1-n) (0.25 for 3 seeds, 0.0625 for 5).\n\n"
            + "\n".join(seed_lines) + pooled_part
            + f"\n\n### Secondary{on}: over (seed, B-scan) pairs\n\nWilcoxon signed-rank over (seed, B-scan) pairs "
            "with fluid in the reference. The 22 test B-scans come from 2 patients, so these pairs are not "
            "independent and the p-values overstate the evidence: a description, not a test of the claim.\n\n"
            + "\n".join(scan_lines) + "\n")


def _scored_on(spec: dict, seeds: list[int]) -> str:
    if spec.get("evaluate_on") == "validation":
        val = base_data(spec).get("val_patients", "?")
        return ("**Validation scores**: every model is scored on the labeled source patients held out of its "
                f"training (`data.val_patients` = {val}), never on the test patients (9-10). Real Spectralis "
                "(Duke DME). Dice per B-scan with the nnU-Net rule; mean ± std over seeds "
                f"{seeds}. The paired comparisons below are on these validation B-scans.\n")
    return ("Real Spectralis source (Duke DME), **simulated** target devices. Dice per B-scan with the "
            "nnU-Net rule, averaged over the test B-scans (patients 9-10) of each domain; mean ± std "
            f"over seeds {seeds}.\n")


def write_report(spec: dict, results_csv: Path, per_case_csv: Path, out_dir: Path, wall_seconds: float,
                 seeds: list[int], command_line: str, status: str = "", machines: str = "") -> Path:
    rows, cases = read_csv(results_csv), read_csv(per_case_csv)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    pooled = summarize(rows, "dice_pooled")
    seconds_per_cell = {(r["method"], r["target_device"], r["seed"]): _f(r["train_seconds"]) for r in rows}
    train_hours = sum(seconds_per_cell.values()) / 3600
    parts = [
        f"# {spec.get('name', 'experiment')}: results\n",
        (spec.get("description") or "").strip() + "\n" if spec.get("description") else "",
        _scored_on(spec, seeds),
        f"Regenerate: `{command_line}`. "
        + (f"Cells trained on: {machines}. " if machines else
           f"Machine: {platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}. ")
        + f"Training time summed over runs: {train_hours:.2f} h; "
        f"this invocation's wall time: {wall_seconds / 3600:.2f} h.{' ' + status + '.' if status else ''}\n",
    ]
    for target in sorted({r["target_device"] for r in rows}):
        methods, domains = _methods(rows, target), _domains(rows, target)
        parts.append(f"\n## Target device `{target}`\n\n### All methods (Dice per B-scan)\n\n"
                     f"{method_table(summary, target, methods, domains)}\n")
        parts.append(f"\n### Pooled Dice\n\n{method_table(pooled, target, methods, domains)}\n")
        ablation = ablation_table(summary, target, methods)
        if ablation:
            parts.append(f"\n### Head x pair ablation (target Dice)\n\n{ablation}\n\n{PS_NOTE}\n")
        if spec.get("amount"):
            amount = {int(k): v for k, v in spec["amount"].items()}
            lines = ["| unlabeled target patients | method | " + " | ".join(domains) + " |",
                     "|---|---|" + "---|" * len(domains)]
            for k in sorted(amount):
                scores = (fmt_summary(summary.get((target, amount[k], d))) for d in domains)
                lines.append(f"| {k} | {amount[k]} | " + " | ".join(scores) + " |")
            parts.append("\n### Amount of target data\n\n" + "\n".join(lines) + "\n")
            plot_amount(summary, target, amount, domains, out_dir / f"amount_{target}.png")
            parts.append(f"\n![amount](amount_{target}.png)\n")
        plot_bars(summary, target, methods, domains, out_dir / f"bars_{target}.png")
        parts.append(f"\n![bars](bars_{target}.png)\n")
        parts.append(_false_positive_section(cases, target, methods, domains))
        pairs = comparisons(spec, methods)
        if pairs:
            # a validation study is scored on the held-out source patients, a test study on the target device
            source = base_data(spec).get("source_domain", DataConfig().source_domain)
            primary = source if spec.get("evaluate_on") == "validation" else target
            parts.append(_paired_section(cases, target, pairs, primary, rows=rows))
            for domain in spec.get("compare_on") or []:
                if domain in domains and domain != primary:
                    parts.append(_paired_section(cases, target, pairs, domain, rows=rows, extra=True))
    report = out_dir / "RESULTS.md"
    atomic_write_text(report, "\n".join(p for p in parts if p))
    return report
