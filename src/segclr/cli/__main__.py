"""``python -m segclr.cli ...``: the same as the ``segclr`` console command."""

import sys

from segclr.cli import main

sys.exit(main())
