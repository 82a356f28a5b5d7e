"""Paired comparisons of two methods from ``per_case.csv``, at the level the evidence supports.

Two rules hold everywhere here:

* **Which B-scans count is decided by the reference mask only.** Dice is scored on the B-scans
  whose reference has the class (``n_ref > 0``), for both methods alike. A B-scan with an empty
  reference has no Dice worth comparing (NaN when nothing is predicted, 0 for any false
  positive), so dropping pairs where *either* method is NaN would silently remove exactly the
  B-scans where one method is right and the other hallucinates. Those B-scans are counted
  separately, as false-positive B-scans.
* **Seeds are the independent units.** The test B-scans come from two patients, so
  (seed, B-scan) pairs are not independent. The primary comparison takes, per seed, each
  method's mean Dice over the B-scans with fluid, and tests the per-seed differences (mean,
  95 % bootstrap interval over seeds, sign test, Wilcoxon signed-rank). The B-scan-level
  Wilcoxon over (seed, B-scan) pairs is kept as a secondary figure and labelled as such.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _has_reference(row: dict) -> bool:
    if "n_ref" not in row or row["n_ref"] in ("", None):
        raise ValueError("per_case.csv has no n_ref column (written by an older segclr): rerun the cells, "
                         "or `segclr experiment ... --report-only` after re-evaluating")
    return _f(row["n_ref"]) > 0


def case_table(cases: list[dict], method: str, target: str, domain: str) -> dict[tuple, dict]:
    """(seed, case, class) -> row of one method on one domain."""
    return {(r["seed"], r["case"], r["class"]): r for r in cases
            if r["method"] == method and r["target_device"] == target and r["domain"] == domain}


def false_positive_scans(cases: list[dict], method: str, target: str, domain: str) -> dict | None:
    """B-scans with an empty reference on which the method predicted the class anyway, per seed."""
    per_seed: dict[str, list[bool]] = defaultdict(list)
    for (seed, _, _), r in case_table(cases, method, target, domain).items():
        if not _has_reference(r):
            per_seed[seed].append(_f(r["n_pred"]) > 0)
    if not per_seed:
        return None
    counts = [sum(v) for v in per_seed.values()]
    return {"mean": float(np.mean(counts)), "of": len(next(iter(per_seed.values()))), "n_seeds": len(counts)}


def dice_with_fluid(cases: list[dict], method: str, target: str, domain: str) -> dict[str, float]:
    """seed -> mean Dice over the B-scans whose reference has the class (NaN-free by construction)."""
    per_seed: dict[str, list[float]] = defaultdict(list)
    for (seed, _, _), r in case_table(cases, method, target, domain).items():
        if _has_reference(r):
            per_seed[seed].append(_f(r["dice"]))
    return {seed: float(np.mean(v)) for seed, v in per_seed.items()}


def bootstrap_ci(values: np.ndarray, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (fixed generator: the report is reproducible)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values)), replace=True).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def seed_level_test(cases: list[dict], target: str, reference: str, other: str, domain: str) -> dict | None:
    """Primary test: per-seed differences of mean Dice over B-scans with fluid, reference - other."""
    return seed_differences(dice_with_fluid(cases, reference, target, domain),
                            dice_with_fluid(cases, other, target, domain), f"{reference} vs {other}")


def pooled_by_seed(rows: list[dict], method: str, target: str, domain: str) -> dict[str, float]:
    """seed -> pooled Dice (all test B-scans of the domain as one volume) from ``results.csv`` rows."""
    return {str(r["seed"]): _f(r["dice_pooled"]) for r in rows
            if r["method"] == method and r["target_device"] == target and r["domain"] == domain}


def pooled_seed_test(rows: list[dict], target: str, reference: str, other: str, domain: str) -> dict | None:
    """The same seed-level test on pooled Dice, reference - other."""
    return seed_differences(pooled_by_seed(rows, reference, target, domain),
                            pooled_by_seed(rows, other, target, domain), f"pooled {reference} vs {other}")


def seed_differences(a: dict[str, float], b: dict[str, float], what: str = "") -> dict | None:
    """Per-seed differences a - b over the seeds both ran: mean, 95 % t and bootstrap intervals,
    wins/losses, sign-test and Wilcoxon signed-rank p."""
    from scipy.stats import binomtest, wilcoxon

    seeds = sorted(set(a) & set(b), key=lambda s: int(s))
    if not seeds:
        return None
    diff = np.array([a[s] - b[s] for s in seeds])
    if np.any(np.isnan(diff)):
        raise ValueError(f"NaN per-seed Dice ({what}, seeds {seeds})")
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    sign_p = float(binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    wil_p = float(wilcoxon(diff).pvalue) if len(diff) > 1 and not np.allclose(diff, 0) else float("nan")
    lo, hi = bootstrap_ci(diff)
    t_lo, t_hi = t_interval(diff)
    return {"n_seeds": len(seeds), "mean_diff": float(diff.mean()), "ci_low": lo, "ci_high": hi,
            "t_low": t_lo, "t_high": t_hi, "wins": wins, "losses": losses, "sign_p": sign_p, "wilcoxon_p": wil_p}


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean: with 3-5 seeds the percentile bootstrap is about [min, max] and
    too narrow; the t interval is the one to read."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = float(t.ppf(0.5 + level / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n))
    return float(values.mean() - half), float(values.mean() + half)


def paired_test(cases: list[dict], target: str, reference: str, other: str, domain: str) -> dict | None:
    """Secondary: Wilcoxon signed-rank over (seed, B-scan) pairs with fluid in the reference.

    Not independent pairs (two test patients): read it as a description, not as evidence.
    """
    from scipy.stats import wilcoxon

    a, b = case_table(cases, reference, target, domain), case_table(cases, other, target, domain)
    keys = [k for k in a if k in b and _has_reference(a[k])]
    if not keys:
        return None
    diff = np.array([_f(a[k]["dice"]) - _f(b[k]["dice"]) for k in keys])
    if np.any(np.isnan(diff)):  # cannot happen with a non-empty reference; guard against a bad file
        raise ValueError(f"NaN Dice on a B-scan with fluid in per_case.csv ({reference} vs {other})")
    p = 1.0 if np.allclose(diff, 0) else float(wilcoxon(diff, zero_method="wilcox").pvalue)
    return {"n": len(keys), "mean_diff": float(diff.mean()), "median_diff": float(np.median(diff)), "p": p,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum())}


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> dict:
    """Unpaired: mean(a) - mean(b) with a Welch (unequal variances) t interval, for two independent samples
    such as the seeds of two recipes. The bounds are NaN when a side has fewer than 2 values or neither side
    varies (no spread to build an interval from); the difference is NaN when a side is empty."""
    from scipy.stats import t

    if not a or not b:
        return {"diff": float("nan"), "low": float("nan"), "high": float("nan")}
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "low": float("nan"), "high": float("nan")}
    va, vb = float(np.var(a, ddof=1)) / len(a), float(np.var(b, ddof=1)) / len(b)
    if va + vb == 0:
        return {"diff": diff, "low": float("nan"), "high": float("nan")}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t.ppf(0.5 + level / 2, df)) * math.sqrt(va + vb)
    return {"diff": diff, "low": diff - half, "high": diff + half}


def seed_summary(per_seed: dict) -> dict | None:
    """{mean, std, n, seeds, values} over the seeds with a number (NaN seeds left out); std is the sample std
    (ddof=1), 0 for a single seed; None when no seed has a number."""
    seeds = sorted((s for s, v in per_seed.items() if not math.isnan(v)), key=int)
    if not seeds:
        return None
    values = [float(per_seed[s]) for s in seeds]
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values), "seeds": seeds, "values": values}


def fmt_summary(stats: dict | None) -> str:
    """``mean ± std (n=k)`` of a summary ({mean, std, n}); "(1 seed)" without a spread; "not run" for none."""
    if not stats:
        return "not run"
    if stats["n"] == 1:
        return f"{stats['mean']:.3f} (1 seed)"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} (n={stats['n']})"


def fmt_p(p: float) -> str:
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"
