"""Device parameters of the simulator: the source export and the simulated devices (``devices.yaml``).

:func:`load_devices` reads ``segclr/resources/devices.yaml`` (or another file) into a
:class:`SourceParams` and one :class:`DeviceParams` per device, refusing unknown or missing keys
and bad values with an :class:`InputError` that names the file and the key. The physical meaning
of every field, and its source, is documented in the YAML itself.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from segclr.io.images import InputError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class SourceParams:
    """The real source export (Heidelberg Spectralis, Duke DME)."""

    name: str = "spectralis"
    axial_spacing_um: float = 3.87
    lateral_spacing_um: float = 11.3
    display_exponent: float = 4.0  # linear = display ** display_exponent
    frames_averaged: int = 9  # informational
    psf_axial_fwhm_um: float = 7.0  # informational
    psf_lateral_fwhm_um: float = 14.0  # informational
    description: str = ""


@dataclass(frozen=True)
class JitterRanges:
    """Half-widths of the uniform per-volume draws."""

    psf_frac: float = 0.0  # relative change of both PSF FWHMs
    noise_floor_db: float = 0.0
    rolloff_db_per_mm: float = 0.0
    dynamic_range_db: float = 0.0
    display_offset_db: float = 0.0
    display_gamma: float = 0.0  # additive


@dataclass(frozen=True)
class Jitter:
    """One per-volume draw of the within-device jitter (offsets added to the nominal values)."""

    psf_scale: float = 1.0
    noise_floor_db: float = 0.0
    rolloff_db_per_mm: float = 0.0
    dynamic_range_db: float = 0.0
    display_offset_db: float = 0.0
    display_gamma: float = 0.0


@dataclass(frozen=True)
class DeviceParams:
    """One simulated device (see ``devices.yaml`` for the physical meaning and references)."""

    name: str
    axial_spacing_um: float
    lateral_spacing_um: float
    psf_axial_fwhm_um: float
    psf_lateral_fwhm_um: float
    frames_averaged: int
    noise_floor_db: float
    rolloff_db_per_mm: float
    dynamic_range_db: float
    display_offset_db: float
    display_gamma: float
    gain_jitter_db: float = 0.0
    # native grid (geometry="native"): the protocol's depth range and lateral field of view;
    # 0 keeps the source's extent
    depth_range_mm: float = 0.0
    field_of_view_mm: float = 0.0
    jitter: JitterRanges = field(default_factory=JitterRanges)
    description: str = ""


# --------------------------------------------------------------------------- loading
_SOURCE_FIELDS = {f.name: f for f in dataclasses.fields(SourceParams)}
_DEVICE_FIELDS = {f.name: f for f in dataclasses.fields(DeviceParams) if f.name not in ("name", "jitter")}
_JITTER_FIELDS = {f.name: f for f in dataclasses.fields(JitterRanges)}
_POSITIVE = {
    "axial_spacing_um", "lateral_spacing_um", "display_exponent", "psf_axial_fwhm_um",
    "psf_lateral_fwhm_um", "dynamic_range_db", "display_gamma", "frames_averaged",
}
_NON_NEGATIVE = {"rolloff_db_per_mm", "gain_jitter_db", "depth_range_mm", "field_of_view_mm"}


def _default_path() -> Path:
    return Path(str(resources.files("segclr") / "resources" / "devices.yaml"))


def _convert(path: Path, key: str, value: Any, f: dataclasses.Field, jitter: bool = False) -> Any:
    """Check one YAML value against its dataclass field and return it converted."""
    name = f.name
    if name == "description" or name == "name":
        if not isinstance(value, str):
            raise InputError(f"{path}: {key} must be a string, got {value!r}")
        return value.strip()
    if name == "frames_averaged":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{path}: {key} must be an integer >= 1, got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{path}: {key} must be a finite number, got {value!r}")
    value = float(value)
    if jitter:
        if value < 0:
            raise InputError(f"{path}: {key} is a jitter half-width and must be >= 0, got {value}")
        if name == "psf_frac" and value >= 1:
            raise InputError(f"{path}: {key} must be < 1, got {value}")
    elif name in _POSITIVE and value <= 0:
        raise InputError(f"{path}: {key} must be > 0, got {value}")
    elif name in _NON_NEGATIVE and value < 0:
        raise InputError(f"{path}: {key} must be >= 0, got {value}")
    return value


def _check_mapping(path: Path, key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{path}: {key} must be a mapping, got {type(value).__name__}")
    return value


def _parse(path: Path, raw: Any) -> tuple[SourceParams, dict[str, DeviceParams]]:
    raw = _check_mapping(path, "top level", raw)
    for key in raw:
        if key not in ("source", "devices"):
            raise InputError(f"{path}: unknown top-level key {key!r} (expected 'source' and 'devices')")
    for key in ("source", "devices"):
        if key not in raw:
            raise InputError(f"{path}: missing top-level key {key!r}")

    src_raw = _check_mapping(path, "source", raw["source"])
    src_kwargs = {}
    for key, value in src_raw.items():
        if key not in _SOURCE_FIELDS:
            raise InputError(f"{path}: unknown key 'source.{key}' (known: {', '.join(_SOURCE_FIELDS)})")
        src_kwargs[key] = _convert(path, f"source.{key}", value, _SOURCE_FIELDS[key])
    for key in ("axial_spacing_um", "lateral_spacing_um", "display_exponent"):
        if key not in src_kwargs:
            raise InputError(f"{path}: missing key 'source.{key}'")
    source = SourceParams(**src_kwargs)

    dev_raw = _check_mapping(path, "devices", raw["devices"])
    if not dev_raw:
        raise InputError(f"{path}: 'devices' is empty")
    devices: dict[str, DeviceParams] = {}
    for name, params in dev_raw.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InputError(f"{path}: device name {name!r} must be lower-case letters, digits and underscores")
        if name == source.name:
            raise InputError(f"{path}: device name {name!r} is the source's name")
        params = _check_mapping(path, f"devices.{name}", params)
        kwargs: dict[str, Any] = {"name": name}
        for key, value in params.items():
            full = f"devices.{name}.{key}"
            if key == "jitter":
                jit = _check_mapping(path, full, value if value is not None else {})
                jkw = {}
                for jkey, jval in jit.items():
                    if jkey not in _JITTER_FIELDS:
                        raise InputError(
                            f"{path}: unknown key '{full}.{jkey}' (known: {', '.join(_JITTER_FIELDS)})"
                        )
                    jkw[jkey] = _convert(path, f"{full}.{jkey}", jval, _JITTER_FIELDS[jkey], jitter=True)
                kwargs["jitter"] = JitterRanges(**jkw)
            elif key in _DEVICE_FIELDS:
                kwargs[key] = _convert(path, full, value, _DEVICE_FIELDS[key])
            else:
                raise InputError(
                    f"{path}: unknown key '{full}' (known: {', '.join([*_DEVICE_FIELDS, 'jitter'])})"
                )
        for key, f in _DEVICE_FIELDS.items():
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if key not in kwargs and not has_default:
                raise InputError(f"{path}: missing key 'devices.{name}.{key}'")
        devices[name] = DeviceParams(**kwargs)
    return source, devices


@lru_cache(maxsize=8)
def _load_cached(path_str: str, mtime_ns: int) -> tuple[SourceParams, dict[str, DeviceParams]]:
    path = Path(path_str)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"{path}: cannot read device file ({err})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from None
    return _parse(path, raw)


def load_devices(path: str | Path | None = None) -> tuple[SourceParams, dict[str, DeviceParams]]:
    """Read the source description and the simulated devices (packaged YAML by default).

    Raises :class:`InputError` naming the file and the key for unknown or missing keys and
    bad values.
    """
    p = _default_path() if path is None else Path(path)
    if not p.is_file():
        raise InputError(f"{p}: device file not found")
    source, devices = _load_cached(str(p), p.stat().st_mtime_ns)
    return source, dict(devices)


def device_names() -> list[str]:
    """Names of the packaged simulated devices (e.g. ``['cirrus_like', 'topcon_like']``)."""
    return list(load_devices()[1])


def normalize_device_name(name: str, include_source: bool = False) -> str:
    """``'Cirrus-like'`` / ``'cirrus_like'`` -> ``'cirrus_like'``; unknown names raise InputError.

    With ``include_source=True`` the source's name (``'spectralis'``) is accepted too.
    """
    source, devices = load_devices()
    known = list(devices) + ([source.name] if include_source else [])
    if not isinstance(name, str):
        raise InputError(f"device name must be a string, got {name!r}; known devices: {', '.join(known)}")
    norm = name.strip().lower().replace("-", "_").replace(" ", "_")
    if norm not in known:
        raise InputError(f"unknown device {name!r}; known devices: {', '.join(known)}")
    return norm
