"""``python -m segclr.bench``: the same as ``segclr bench``."""

from segclr.bench.driver import main

main(prog="python -m segclr.bench")
