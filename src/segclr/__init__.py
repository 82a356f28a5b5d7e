"""segclr: cross-device OCT fluid segmentation with SegCLR (Gomariz et al., arXiv:2405.05336)."""

__version__ = "0.1.0"
