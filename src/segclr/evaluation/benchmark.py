"""Score a model on the test patients of every benchmark domain."""

from __future__ import annotations

from segclr.data.domains import DomainBank
from segclr.evaluation.evaluate import score_pairs
from segclr.inference.predict import Predictor


def evaluate_domains(predictor: Predictor, bank: DomainBank, domains: list[str], role: str = "test",
                     progress: bool = True) -> dict[str, dict]:
    """domain -> nnU-Net-like summary over the B-scans of that domain's ``role`` patients."""
    out = {}
    for d in domains:
        vols = bank.volumes(d, role)
        # each domain scored on its own grid (native-grid devices included), at each volume's spacing
        cases = [(f"{d}/{name}", img, msk, v.spacing_um) for v in vols
                 for name, img, msk in zip(v.names, v.images, v.masks)]
        out[d] = score_pairs(predictor, cases, progress=progress, desc=f"evaluate {d}", total=len(cases)).summary()
    return out
