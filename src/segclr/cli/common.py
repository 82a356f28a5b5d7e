"""Small helpers shared by the ``segclr`` command handlers."""

from __future__ import annotations

import sys


def _bars() -> bool:
    """Progress bars only in a terminal: in a log file their carriage returns smear into one line."""
    return sys.stderr.isatty()
