"""Score a model on the test patients of every benchmark domain."""

from __future__ import annotations

from segclr.data.domains import DomainBank
from segclr.evaluation.evaluate import score_pairs
from segclr.inference.predict import Predictor


def evaluate_domains(predictor: Predictor, bank: DomainBank, domains: list[str], role: str = "test",
                     progress: bool = True) -> dict[str, dict]:
    """domain -> nnU-Net-like summary over the B-scans of that domain's ``role`` patients."""
    # each domain scored on its own grid (native-grid devices included), at each volume's spacing
    return {d: score_volumes(predictor, d, bank.volumes(d, role), progress, f"evaluate {d}") for d in domains}


def score_volumes(predictor: Predictor, domain: str, volumes: list, progress: bool = True,
                  desc: str = "evaluate") -> dict:
    """nnU-Net-like summary over every B-scan of ``volumes`` (cases named ``domain/<B-scan>``), each
    B-scan at its volume's spacing."""
    cases = [(f"{domain}/{name}", img, msk, v.spacing_um) for v in volumes
             for name, img, msk in zip(v.names, v.images, v.masks)]
    return score_pairs(predictor, cases, progress=progress, desc=desc, total=len(cases)).summary()
