"""nnU-Net v2 raw datasets: ``dataset.json``, ``imagesTr/CASE_0000<ending>``, ``labelsTr/CASE<ending>``.

``dataset.json`` gives ``channel_names`` (one channel for OCT), ``labels`` as name -> int
(``background`` = 0), ``numTraining`` and ``file_ending`` (``.nii.gz``, ``.nii``, ``.mhd`` or
``.mha`` here). Unlabeled cases may sit in ``imagesTs``. A per-case ``domain`` tag (device) comes
from a small mapping file at the dataset root, not part of nnU-Net: ``domains.json``
(``{"CASE": "spectralis", ...}``) or ``domains.csv`` (columns ``case,domain``).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError
from segclr.io.volumes import VOLUME_SUFFIXES, Volume, write_volume

DOMAIN_FILES = ("domains.json", "domains.csv")


@dataclass
class NnUNetCase:
    case_id: str
    image: Path
    label: Path | None = None
    domain: str | None = None
    split: str = "Tr"  # "Tr" (imagesTr) or "Ts" (imagesTs)


@dataclass
class NnUNetDataset:
    root: Path
    name: str
    labels: dict[int, str]           # int -> name, background included
    file_ending: str
    cases: list[NnUNetCase] = field(default_factory=list)
    channel_names: dict[str, str] = field(default_factory=lambda: {"0": "OCT"})

    @property
    def foreground(self) -> dict[int, str]:
        return {k: v for k, v in self.labels.items() if k != 0}


def is_nnunet_dataset(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "dataset.json").is_file()


def read_domain_map(path: str | Path) -> dict[str, str]:
    """``domains.json`` ({case: domain}) or ``domains.csv`` (case,domain) -> {case: domain}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: domain mapping file not found")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise InputError(f"{path}: expected a JSON object mapping case id -> domain name")
        return dict(data)
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"case", "domain"} <= set(reader.fieldnames):
                raise InputError(f"{path}: expected CSV columns 'case' and 'domain'")
            return {row["case"]: row["domain"] for row in reader}
    raise InputError(f"{path}: domain mapping must be .json or .csv")


def read_dataset(root: str | Path, domain_map: str | Path | None = None) -> NnUNetDataset:
    """Parse ``dataset.json`` and list the cases (one channel; labels where ``labelsTr`` has them)."""
    root = Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: not found; not an nnU-Net raw dataset")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{meta_path}: not valid JSON ({err})") from None
    for key in ("channel_names", "labels", "file_ending"):
        if key not in meta:
            raise InputError(f"{meta_path}: missing '{key}'")
    channels = meta["channel_names"]
    if not isinstance(channels, dict) or len(channels) != 1:
        raise InputError(f"{meta_path}: {len(channels) if isinstance(channels, dict) else '?'} channels; "
                         f"segclr segments single-channel OCT (channel_names must have one entry)")
    labels: dict[int, str] = {}
    if not isinstance(meta["labels"], dict):
        raise InputError(f"{meta_path}: 'labels' must map names to integers")
    for name, value in meta["labels"].items():
        if isinstance(value, (list, tuple)):
            raise InputError(f"{meta_path}: label '{name}' is a region {value}; region-based labels are not supported")
        if not isinstance(value, int) or value < 0:
            raise InputError(f"{meta_path}: label '{name}' must be a non-negative integer, got {value!r}")
        labels[value] = name
    if 0 not in labels:
        raise InputError(f"{meta_path}: 'labels' needs background = 0")
    ending = meta["file_ending"]
    if ending not in VOLUME_SUFFIXES:
        raise InputError(f"{meta_path}: file_ending {ending!r} not supported (use one of {', '.join(VOLUME_SUFFIXES)})")

    mapping: dict[str, str] = {}
    if domain_map is not None:
        mapping = read_domain_map(domain_map)
    else:
        for name in DOMAIN_FILES:
            if (root / name).is_file():
                mapping = read_domain_map(root / name)
                break

    pattern = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(ending) + "$")
    cases: list[NnUNetCase] = []
    for split in ("Tr", "Ts"):
        folder = root / f"images{split}"
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            m = pattern.match(f.name)
            if not m:
                continue
            if m["channel"] != "0000":
                raise InputError(f"{f}: channel {m['channel']}; segclr segments single-channel OCT (only _0000)")
            case = m["case"]
            label = root / f"labels{split}" / f"{case}{ending}"
            cases.append(NnUNetCase(case, f, label if label.is_file() else None, mapping.get(case), split))
    if not cases:
        raise InputError(f"{root}: no images (imagesTr/CASE_0000{ending}) in this nnU-Net dataset")
    missing = [c.case_id for c in cases if c.split == "Tr" and c.label is None]
    if missing:
        raise InputError(f"{root / 'labelsTr' / (missing[0] + ending)}: label missing for training case {missing[0]} "
                         f"({len(missing)} missing)")
    unknown = sorted(set(mapping) - {c.case_id for c in cases})
    if unknown:
        raise InputError(f"{domain_map or root / 'domains'}: domain given for unknown case {unknown[0]!r}")
    return NnUNetDataset(root, str(meta.get("name", root.name)), dict(sorted(labels.items())), ending, cases,
                         dict(channels))


def write_dataset(root: str | Path, cases: list[tuple[str, Volume, Volume | None, str | None]],
                  labels: dict[str, int], name: str | None = None, file_ending: str = ".nii.gz",
                  channel_name: str = "OCT") -> NnUNetDataset:
    """Write a raw dataset: labeled cases to imagesTr/labelsTr, unlabeled ones to imagesTs.

    ``cases`` holds ``(case_id, image, label or None, domain or None)``; ``labels`` is
    name -> int as in ``dataset.json``. A ``domains.json`` is written when any domain is given.
    Every file is written atomically.
    """
    root = Path(root)
    if file_ending not in VOLUME_SUFFIXES:
        raise InputError(f"file_ending {file_ending!r} not supported (use one of {', '.join(VOLUME_SUFFIXES)})")
    n_train = 0
    domains = {}
    for case_id, image, label, domain in cases:
        split = "Tr" if label is not None else "Ts"
        write_volume(root / f"images{split}" / f"{case_id}_0000{file_ending}", image)
        if label is not None:
            write_volume(root / "labelsTr" / f"{case_id}{file_ending}", label)
            n_train += 1
        if domain is not None:
            domains[case_id] = domain
    meta = {
        "name": name or root.name,
        "channel_names": {"0": channel_name},
        "labels": dict(labels),
        "numTraining": n_train,
        "file_ending": file_ending,
    }
    atomic_write_text(root / "dataset.json", json.dumps(meta, indent=4))
    if domains:
        atomic_write_text(root / "domains.json", json.dumps(domains, indent=2))
    return read_dataset(root)
