"""Domains, volumes and patient splits of the embedded benchmark.

A *domain* is a device (real or simulated); it holds *volumes* (one per patient), each an
ordered list of B-scans. The embedded data is the real Duke DME Spectralis set (Chiu et al.,
Biomed. Opt. Express 6(4):1172, 2015): 10 patients x 11 annotated B-scans with binary fluid
masks. Simulated devices are rendered from it by :mod:`segclr.data.simulate`, so their labels
are the real labels. Results on them are "real Spectralis source, simulated target devices".

Splits are by patient, never by B-scan (the README's "The benchmark"), and enforced here:
source train 1-5, target train 6-8 (unlabeled except for the upper bound), test 9-10.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from segclr.data.preprocess import check_spacing
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
    role: str | None = None             # split role from a dataset file; None = the benchmark's SPLITS
    labeled: bool = True
    spacing_um: tuple[float, float] | None = None  # (row, column) um per pixel; None = unknown

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


def source_spacing_um() -> tuple[float, float]:
    """(row, column) spacing of the Duke Spectralis export, from ``devices.yaml``'s source block."""
    from segclr.data.devices import load_devices

    src = load_devices()[0]
    return src.axial_spacing_um, src.lateral_spacing_um


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
    spacing = source_spacing_um()
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
                spacing_um=spacing,
            )
        )
    return volumes


class DomainBank:
    """Lazily builds and caches every domain's volumes (rendering simulated devices once).

    With a ``dataset`` file (see :func:`load_dataset`) the domains come from the user's
    volumes instead of the embedded benchmark.
    """

    def __init__(self, simulation_seed: int = 0, root: Path | None = None, dataset: str | Path | None = None,
                 geometry: str = "native") -> None:
        from segclr.data.geometry import GEOMETRIES

        if geometry not in GEOMETRIES:
            raise InputError(f"data.geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
        self.simulation_seed = simulation_seed
        self.geometry = geometry
        self.root = root
        self._cache: dict[str, list[Volume]] = load_dataset(dataset) if dataset else {}
        self.external = bool(dataset)

    def domain(self, name: str) -> list[Volume]:
        if self.external and name not in self._cache:
            raise InputError(f"domain {name!r} is not in the dataset file (it has: {', '.join(self._cache)})")
        if name not in self._cache:
            source = self._cache.get(SOURCE_DOMAIN) or load_spectralis(self.root)
            self._cache[SOURCE_DOMAIN] = source
            if name != SOURCE_DOMAIN:
                self._cache[name] = simulate_domain(source, name, self.simulation_seed, self.geometry)
        return self._cache[name]

    def volumes(self, name: str, role: str) -> list[Volume]:
        """Volumes of ``name`` whose patients belong to split ``role``."""
        vols = self.domain(name)
        if self.external:
            return [v for v in vols if v.role == role]
        allowed = patients_for(role)
        return [v for v in vols if v.patient in allowed]


def simulate_domain(source: list[Volume], device: str, seed: int, geometry: str = "source") -> list[Volume]:
    """Render every source volume as ``device``.

    ``geometry="source"``: on the source grid, masks carry over unchanged. ``"native"``: on the
    device's own grid (spacing, depth range, field of view), masks mapped the same way.
    """
    from segclr.data.simulate import device_grid, load_devices, normalize_device_name, render_volume

    device = normalize_device_name(device)
    src_params, devices = load_devices()
    dev = devices[device]
    out = []
    for vol in source:
        images = render_volume(vol.images, dev, seed, f"patient{vol.patient:02d}", src_params, geometry=geometry)
        if geometry == "native":
            masks = [device_grid(m.shape, dev, src_params).mask(m) for m in vol.masks]
            spacing = (dev.axial_spacing_um, dev.lateral_spacing_um)
        else:
            masks, spacing = [m.copy() for m in vol.masks], vol.spacing_um
        out.append(Volume(device, vol.patient, images, masks, list(vol.names), spacing_um=spacing))
    return out


def all_domain_names() -> list[str]:
    from segclr.data.simulate import device_names

    return [SOURCE_DOMAIN, *device_names()]


DATASET_ROLES = ("source_train", "target_train", "test")


def load_dataset(path: str | Path) -> dict[str, list[Volume]]:
    """Domains from a dataset file: each domain a list of volumes, with labels or without.

    ::

        domains:
          spectralis:
            - {image: retouch/TRAIN001/oct.mhd, label: retouch/TRAIN001/reference.mhd, role: source_train}
            - {image: retouch/TRAIN002/oct.mhd, label: retouch/TRAIN002/reference.mhd, role: test}
          cirrus:
            - {image: cirrus/vol1.nii.gz, role: target_train}          # unlabeled
            - {folder: retouch_cirrus/, role: target_train}             # every case of a folder/dataset

    Paths are relative to the file. Any format of :mod:`segclr.io.volumes` is accepted; images
    are scaled to [0, 1] as at prediction. ``role`` is one of source_train, target_train, test.
    """
    import yaml

    from segclr.io.cases import find_cases
    from segclr.io.intensity import normalize_intensity
    from segclr.io.volumes import read_volume

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: dataset file not found")
    spec = yaml.safe_load(path.read_text()) or {}
    domains = spec.get("domains") if isinstance(spec, dict) else None
    if not isinstance(domains, dict) or not domains:
        raise InputError(f"{path}: needs a 'domains' mapping of domain name -> list of volumes")
    out: dict[str, list[Volume]] = {}
    patient = 0
    for name, entries in domains.items():
        if not isinstance(entries, list):
            raise InputError(f"{path}: domain {name!r} must be a list of volumes")
        for k, entry in enumerate(entries):
            where = f"{path}: domains.{name}[{k}]"
            if not isinstance(entry, dict) or entry.get("role") not in DATASET_ROLES or not (
                    ("image" in entry) ^ ("folder" in entry)):
                raise InputError(f"{where}: needs 'image' (or 'folder') and a role in {DATASET_ROLES}")
            unknown = set(entry) - {"image", "label", "folder", "role"}
            if unknown:
                raise InputError(f"{where}: unknown key(s) {sorted(unknown)}")
            if "folder" in entry:
                cases = find_cases(path.parent / entry["folder"]).cases
                pairs = [(c.image, c.label) for c in cases]
            else:
                pairs = [(path.parent / entry["image"], path.parent / entry["label"] if entry.get("label") else None)]
            for image_path, label_path in pairs:
                image = read_volume(image_path)
                arr = normalize_intensity(image.array, image_path)
                label = read_volume(label_path, kind="label").array.astype(np.int64) if label_path else None
                if label is not None and label.shape != arr.shape:
                    raise InputError(f"{label_path}: label shape {label.shape} differs from image {arr.shape}")
                masks = list(label) if label is not None else [np.zeros(arr.shape[1:], np.int64)] * len(arr)
                spacing = None
                if image.spacing_mm is not None:  # (z, y, x) mm -> (row, column) um of each B-scan
                    spacing = check_spacing((image.spacing_mm[1] * 1000.0, image.spacing_mm[2] * 1000.0),
                                            str(image_path))
                patient += 1
                out.setdefault(name, []).append(Volume(
                    name, patient, list(arr), masks, [f"{image_path}#{i}" for i in range(len(arr))],
                    role=entry["role"], labeled=label is not None, spacing_um=spacing))
    return out
