"""Speed of segclr on one machine, from a clone: the same as ``segclr bench`` (its code is :mod:`segclr.bench`).

Usage::

    python benchmarks/bench_train.py [--device cpu|cuda] [--out DIR] [--steps N] [--quick]
                                     [--rounds R] [--threads T] [--variants fp32,bf16,fp32-cl,bf16-cl]
                                     [--no-sweep] [--no-profile]

The only difference to ``segclr bench``: ``--out`` defaults to ``benchmarks/out/`` (ignored by git).
What is measured and how: the docstring of ``src/segclr/bench/__init__.py`` and docs/performance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if (SRC / "segclr").is_dir() and str(SRC) not in sys.path:  # a clone without `pip install -e .`
    sys.path.insert(0, str(SRC))

from segclr.bench.driver import main  # noqa: E402

if __name__ == "__main__":
    main(prog="python benchmarks/bench_train.py", default_out=HERE / "out")
