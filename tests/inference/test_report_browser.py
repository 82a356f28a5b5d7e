"""The HTML report in a real browser: headless Chromium loads it with no console error, every image decodes,
the table sorts. Skipped, saying why, where no Chromium is installed (``make test`` installs Debian's
``chromium`` when it can: see the Makefile's ``browser`` target)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from segclr.cli import main
from segclr.io.volumes import Volume, write_volume

ROOT = Path(__file__).resolve().parents[2]


def _browser_module():
    spec = importlib.util.spec_from_file_location("report_browser", ROOT / "benchmarks" / "report_browser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rb = _browser_module()
CHROMIUM = rb.find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary (chromium, chromium-browser, google-chrome or SEGCLR_CHROMIUM): the browser test of "
           "the HTML report needs one; `make test` installs Debian's chromium when run as root with apt-get")


def test_report_loads_cleanly_in_chromium(tiny_bundle, tmp_path):
    inp = tmp_path / "in"
    rng = np.random.default_rng(0)
    for k, spacing in enumerate([(0.12, 0.0039, 0.0113), None]):
        arr = np.clip(0.5 + 0.2 * rng.standard_normal((6 + 2 * k, 48, 64)), 0, 1)  # B-scans 6, 8: sortable
        write_volume(inp / f"case{k}.mhd", Volume((arr * 255).astype(np.uint8), spacing))
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--input", str(inp), "--output", str(out),
                 "--report"]) == 0
    res = rb.check_report(out / "report.html", screenshot=tmp_path / "shot.png", binary=CHROMIUM)
    assert res["errors"] == []
    assert res["failed_images"] == [] and res["n_images"] >= 2
    assert res["rows"] == 2 and res["sections"] == 2
    sort = res["sort"]
    assert sort["column"] == "B-scans" and sort["aria"] == "descending"
    assert sort["asc"] == ["case0", "case1"] and sort["desc"] == ["case1", "case0"]
    assert (tmp_path / "shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_check_sees_errors_and_broken_images(tmp_path):
    """Negative control: a console error, an uncaught exception and an undecodable image are all reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>bad'
                    '</title></head><body><img alt="broken" src="data:image/png;base64,iVBORw0KGgo=">'
                    '<script>console.error("boom"); null.x;</script></body></html>')
    res = rb.check_report(page, binary=CHROMIUM)
    assert not res["ok"]
    assert any("boom" in e for e in res["errors"]) and any("uncaught" in e for e in res["errors"])
    assert [i["alt"] for i in res["failed_images"]] == ["broken"]
