"""Keep freed memory in the process (glibc): fewer page faults per training step and per volume.

With glibc's defaults every large array (a volume, a batch of probability maps) is a fresh ``mmap``
whose pages fault in again on first touch, and the dynamic mmap threshold makes how often that
happens depend on the process's history. ``keep_freed_memory`` turns that off (no mmap below 1 GB,
no heap trimming). The ``segclr`` commands that train or segment call it first; ``SEGCLR_MALLOC=default``
in the environment leaves glibc's defaults. Measured on the 2-core AMD EPYC with
``benchmarks/allocator_pairs.py`` (docs/performance.md): faster in 12 of 12 paired runs; ``segclr predict``
on a 49-slice volume 6.51 -> 5.52 s median, short ``segclr fit`` runs 34 -> 29 s (supervised) and 32 -> 31 s
(SegCLR UDA); the predict run's peak memory moves within about ±75 MB either way (549-625 MB).
"""

from __future__ import annotations

import os
import platform
import resource

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_applied = False


def keep_freed_memory() -> bool:
    """No mmap for blocks under 1 GB and no heap trimming (glibc ``mallopt``). True when in effect;
    False off glibc or with ``SEGCLR_MALLOC=default`` (the allocator is left alone). Idempotent."""
    global _applied
    if _applied:
        return True
    if os.environ.get("SEGCLR_MALLOC", "").lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False
    return _applied


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


__all__ = ["keep_freed_memory", "minor_faults"]
