"""`segclr predict` keeps freed memory in the process (glibc), so a volume's arrays do not page-fault in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import segclr.inference.allocator as allocator
from segclr.cli import main


def test_predict_sets_the_allocator_before_reading_anything(tiny_bundle, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((64, 80), 90, np.uint8)).save(images / "b0.png")
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--input", str(images), "--output",
                 str(tmp_path / "out")]) == 0
    assert calls == [1] and (tmp_path / "out" / "b0.png").is_file()
    assert main(["models"]) == 0 and calls == [1]  # listing models allocates nothing worth it
    from segclr.cli import HEAVY

    assert set(HEAVY) == {"demo", "fit", "experiment", "evaluate", "predict"}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_segclr_malloc_default_leaves_glibc_alone():
    code = "from segclr.inference.allocator import keep_freed_memory as k; print(k())"
    env = {**os.environ, "SEGCLR_MALLOC": "default"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         timeout=120).stdout.strip()
    assert out == "False"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_large_arrays_from_faulting_in_again():
    """The same 64 MB array allocated and freed 5 times: with glibc's defaults each one is a fresh mmap whose
    pages fault in again (how many depends on transparent huge pages); kept, the heap reuses them."""
    code = (
        "import sys, numpy as np\n"
        "from segclr.inference.allocator import keep_freed_memory, minor_faults\n"
        "if sys.argv[1] == 'keep': assert keep_freed_memory() and keep_freed_memory()\n"
        "np.ones(8 << 20)\n"
        "f = minor_faults()\n"
        "for _ in range(5): np.ones(8 << 20)\n"
        "print(minor_faults() - f)\n")
    faults = {k: int(subprocess.run([sys.executable, "-c", code, k], capture_output=True, text=True, check=True,
                                    timeout=120).stdout) for k in ("default", "keep")}
    assert faults["keep"] <= 100 < faults["default"], faults
