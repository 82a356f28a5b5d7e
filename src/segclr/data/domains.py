"""Domains, volumes and patient splits of the embedded benchmark.

A *domain* is a device (real or simulated); it holds *volumes* (one per patient), each an
ordered list of B-scans. The embedded data is the real Duke DME Spectralis set (Chiu et al.,
Biomed. Opt. Express 6(4):1172, 2015): 10 patients x 11 annotated B-scans with binary fluid
masks. Simulated devices are rendered from it by :mod:`segclr.data.simulate`, so their labels
are the real labels. Results on them are "real Spectralis source, simulated target devices".

Splits are by patient, never by B-scan (BENCHMARK.md), and enforced here:
source train 1-5, target train 6-8 (unlabeled except for the upper bound), test 9-10.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from segclr.io.images import InputError, read_image, read_mask

SOURCE_DOMAIN = "spectralis"
SPLITS: dict[str, tuple[int, ...]] = {
    "source_train": (1, 2, 3, 4, 5),
    "target_train": (6, 7, 8),
    "test": (9, 10),
}
# Duke graders annotated only the central columns; we crop to them before training and scoring.
ANNOTATED_COLUMNS = (96, 672)


@dataclass
class Volume:
    """One patient's ordered B-scans in one domain."""

    domain: str
    patient: int
    images: list[np.ndarray]            # float32 (H, W) in [0, 1]
    masks: list[np.ndarray]             # int64 (H, W)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def patients_for(role: str) -> tuple[int, ...]:
    if role not in SPLITS:
        raise KeyError(f"unknown split role {role!r}; expected one of {', '.join(SPLITS)}")
    return SPLITS[role]


def role_of(patient: int) -> str:
    for role, patients in SPLITS.items():
        if patient in patients:
            return role
    raise KeyError(f"patient {patient} is in no split")


def embedded_data_dir() -> Path:
    return Path(str(resources.files("segclr") / "resources" / "duke_dme_fluid"))


def load_spectralis(root: Path | None = None, patients: tuple[int, ...] | None = None) -> list[Volume]:
    """Load the embedded Duke DME volumes (cropped to the annotated columns), in slice order."""
    root = Path(root) if root is not None else embedded_data_dir()
    index = root / "index.csv"
    if not index.is_file():
        raise InputError(f"{index}: dataset index not found")
    rows: dict[int, list[tuple[int, str]]] = {}
    with index.open() as fh:
        for row in csv.DictReader(fh):
            rows.setdefault(int(row["subject"]), []).append((int(row["annotated_slice_order"]), row["file"]))
    c0, c1 = ANNOTATED_COLUMNS
    volumes = []
    for patient in sorted(rows):
        if patients is not None and patient not in patients:
            continue
        files = [f for _, f in sorted(rows[patient])]
        volumes.append(
            Volume(
                domain=SOURCE_DOMAIN,
                patient=patient,
                images=[read_image(root / "images" / f)[:, c0:c1] for f in files],
                masks=[read_mask(root / "masks" / f, num_classes=2)[:, c0:c1] for f in files],
                names=files,
            )
        )
    return volumes


class DomainBank:
    """Lazily builds and caches every domain's volumes (rendering simulated devices once)."""

    def __init__(self, simulation_seed: int = 0, root: Path | None = None) -> None:
        self.simulation_seed = simulation_seed
        self.root = root
        self._cache: dict[str, list[Volume]] = {}

    def domain(self, name: str) -> list[Volume]:
        if name not in self._cache:
            source = self._cache.get(SOURCE_DOMAIN) or load_spectralis(self.root)
            self._cache[SOURCE_DOMAIN] = source
            if name != SOURCE_DOMAIN:
                self._cache[name] = simulate_domain(source, name, self.simulation_seed)
        return self._cache[name]

    def volumes(self, name: str, role: str) -> list[Volume]:
        """Volumes of ``name`` whose patients belong to split ``role``."""
        allowed = patients_for(role)
        return [v for v in self.domain(name) if v.patient in allowed]


def simulate_domain(source: list[Volume], device: str, seed: int) -> list[Volume]:
    """Render every source volume as ``device``; masks carry over unchanged."""
    from segclr.data.simulate import load_devices, normalize_device_name, render_volume

    device = normalize_device_name(device)
    src_params, devices = load_devices()
    out = []
    for vol in source:
        images = render_volume(vol.images, devices[device], seed, f"patient{vol.patient:02d}", src_params)
        out.append(Volume(device, vol.patient, images, [m.copy() for m in vol.masks], list(vol.names)))
    return out


def all_domain_names() -> list[str]:
    from segclr.data.simulate import device_names

    return [SOURCE_DOMAIN, *device_names()]
