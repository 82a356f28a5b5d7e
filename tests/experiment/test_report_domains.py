"""The report repeats its paired comparisons on the domains a spec's ``compare_on`` names.

A claim like "the gain shows on the source device too" needs the paired test there, not two unpaired
means; these tests check the repeat on fabricated results with hand-computed differences.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segclr.config import ConfigError
from segclr.experiment.report import write_report
from segclr.experiment.spec import load_spec

HEADER = "method,target_device,seed,config_hash,domain,class,dice_mean,dice_pooled,train_seconds"
CASE_HEADER = "method,target_device,seed,domain,class,case,dice,n_ref,n_pred"


def _results(tmp_path: Path) -> tuple[Path, Path]:
    """Two methods, two seeds, target ``dev`` and source ``spectralis``. Per seed on spectralis, A beats B
    by +0.10 and +0.20 (Dice on B-scans with fluid) and by +0.05 and +0.15 pooled; on ``dev`` A loses."""
    rows, cases = [HEADER], [CASE_HEADER]
    for seed, (gain, pooled_gain) in enumerate([(0.10, 0.05), (0.20, 0.15)]):
        rows += [f"A,dev,{seed},h,dev,fluid,0.4,0.5,10", f"B,dev,{seed},h,dev,fluid,0.5,0.6,10",
                 f"A,dev,{seed},h,spectralis,fluid,{0.5 + gain},{0.6 + pooled_gain},10",
                 f"B,dev,{seed},h,spectralis,fluid,0.5,0.6,10"]
        for case in ("c0", "c1"):
            cases += [f"A,dev,{seed},dev,fluid,{case},0.4,100,90", f"B,dev,{seed},dev,fluid,{case},0.5,100,90",
                      f"A,dev,{seed},spectralis,fluid,{case},{0.5 + gain},100,90",
                      f"B,dev,{seed},spectralis,fluid,{case},0.5,100,90"]
    results, per_case = tmp_path / "results.csv", tmp_path / "per_case.csv"
    results.write_text("\n".join(rows) + "\n")
    per_case.write_text("\n".join(cases) + "\n")
    return results, per_case


def _report(tmp_path: Path, **spec) -> str:
    results, per_case = _results(tmp_path)
    return write_report({"name": "fab", "baseline": "B", **spec}, results, per_case, tmp_path / "rep", 0.0,
                        [0, 1], "segclr experiment fab.yaml").read_text()


def test_compare_on_repeats_the_paired_tests_on_the_named_domain(tmp_path):
    text = _report(tmp_path, compare_on=["spectralis", "dev", "not_scored"])
    target, source = text.split("### Paired comparison on `spectralis`")
    # the target section is as before: A - B is -0.1 on both seeds, headings without a domain
    assert "### Paired comparison on the target domain" in target
    assert "| A − B | 2 | -0.100 |" in target and "0/2" in target
    assert "### Pooled Dice, over seeds" in target and "### Secondary: over" in target
    # the repeat: the per-seed gains +0.1 and +0.2 (mean +0.15), pooled +0.05 and +0.15 (mean +0.10)
    assert "| A − B | 2 | +0.150 |" in source and "| A − B | 2 | +0.100 |" in source
    assert "### Pooled Dice on `spectralis`, over seeds" in source
    assert "### Secondary on `spectralis`: over (seed, B-scan) pairs" in source
    assert "| A − B | 4 | +0.150 |" in source  # (seed, B-scan) pairs: 2 seeds x 2 B-scans
    # the target named again, or a domain without results, adds no section
    assert text.count("### Paired comparison") == 2


def test_without_compare_on_the_report_has_only_the_target_section(tmp_path):
    text = _report(tmp_path)
    assert text.count("### Paired comparison") == 1 and "on `spectralis`" not in text


def test_compare_on_must_be_a_list_of_domain_names(tmp_path):
    path = tmp_path / "exp.yaml"
    for bad in ("spectralis", [["spectralis"]], [3]):
        path.write_text(yaml.safe_dump({"name": "x", "methods": {"a": {}}, "compare_on": bad}))
        with pytest.raises(ConfigError, match="compare_on must be a list of domain names"):
            load_spec(path)
    path.write_text(yaml.safe_dump({"name": "x", "methods": {"a": {}}, "compare_on": ["spectralis"]}))
    assert load_spec(path)["compare_on"] == ["spectralis"]


def test_compare_on_must_name_a_domain_the_cells_are_scored_on(tmp_path):
    path = tmp_path / "exp.yaml"
    # a typo would otherwise drop the repeat without a word
    path.write_text(yaml.safe_dump({"name": "x", "methods": {"a": {}}, "compare_on": ["spectralsi"]}))
    with pytest.raises(ConfigError, match=r"compare_on names \['spectralsi'\], which the cells are not scored on"):
        load_spec(path)
    # a base that scores fewer domains narrows what compare_on may name
    path.write_text(yaml.safe_dump({"name": "x", "methods": {"a": {}}, "compare_on": ["topcon_like"],
                                    "base": {"data": {"eval_domains": ["spectralis", "cirrus_like"]}}}))
    with pytest.raises(ConfigError, match="eval_domains: \\['spectralis', 'cirrus_like'\\]"):
        load_spec(path)
