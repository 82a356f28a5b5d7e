"""Experiments built from fit + evaluate: the demo (and, later, the study runner)."""
