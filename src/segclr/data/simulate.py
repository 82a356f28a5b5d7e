"""Physics-based OCT device simulator: render real Spectralis B-scans as other devices.

What it models
--------------
The benchmark keeps the *real* Heidelberg Spectralis B-scans of the Duke DME set (Chiu et al.,
Biomed Opt Express 6(4):1172, 2015) and their real fluid masks, and renders simulated target
devices from them. Every number reported on these devices is a result on
**"real Spectralis source, simulated target devices"**, never a real cross-device result.

Each device is one parameter set in ``segclr/resources/devices.yaml`` (:class:`DeviceParams`),
the source export is described by :class:`SourceParams`. Rendering one B-scan works in
*linear intensity*, never on display values:

1. **Undo the source display**: the Spectralis export is roughly a 4th-root mapping, so
   ``linear = display ** display_exponent`` (0 dB = the source's white level).
2. **Device geometry**: resample (``scipy.ndimage.zoom``, order 1, same field of view) to the
   device's axial / lateral pixel spacing (Bogunovic et al., IEEE TMI 38(8):1858, 2019:
   Cirrus 1024 rows over 2 mm, Topcon 885 rows over 2.3 mm, 512 A-scans over 6 mm).
3. **Optics**: the device has an anisotropic Gaussian *coherent* (amplitude) PSF ``h`` with the
   given FWHMs (OCT convention: the axial resolution is the FWHM of the coherence envelope).
   The mean intensity image is the object blurred by ``|h|^2`` (a Gaussian whose sigma is
   ``sigma_h / sqrt(2)``).
4. **Speckle** (Goodman, *Speckle Phenomena in Optics*, 2007; Schmitt et al., J Biomed Opt
   4(1):95, 1999): the field of one acquisition is ``sqrt(I) * U`` with ``U = h * W``, ``W``
   circular complex white Gaussian noise, normalised to unit mean power. ``|U|^2`` is fully
   developed speckle (exponential intensity, contrast 1, grain set by the PSF in device
   pixels); the mean of ``N`` frames is Gamma(N, 1/N), contrast ``1/sqrt(N)``.
5. **Noise floor, roll-off, gain**: circular complex Gaussian noise of power
   ``10**(noise_floor_db/10)`` is added to each frame's field before taking ``|.|^2``
   (Rayleigh/Rician magnitude statistics); the signal falls off with depth by
   ``rolloff_db_per_mm`` and is scaled by a per-B-scan gain jitter (dB).
6. **Device display**: ``10*log10(I)`` is mapped linearly from
   ``display_offset_db - dynamic_range_db`` (black) to ``display_offset_db`` (white),
   clipped to [0, 1], then raised to ``display_gamma``.

**Grid rule.** After step 6 the display image is resampled back (order 1, same field of view)
to the *source* grid, so the output has exactly the input's shape and the real label masks carry
over pixel for pixel. The device's own sampling therefore shows up as its speckle grain and
resolution, not as a different image size.

Within-device variation: each volume draws one :class:`Jitter` (uniform half-widths from the
YAML ``jitter:`` block) and each B-scan one gain offset. :func:`render_volume` is deterministic:
its generator is ``np.random.default_rng([seed, stable_hash(device), stable_hash(volume_key)])``
with a CRC-32 hash (never Python's salted ``hash()``).

Device protocol references: Huang et al., IOVS 53(4):2133 (2012); Bogunovic et al. (2019).
Pure numpy / scipy; one 496 x 576 B-scan renders in well under 0.5 s on one CPU core.
"""

from __future__ import annotations

import dataclasses
import math
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import ndimage

from segclr.io.images import InputError

__all__ = [
    "DeviceParams",
    "Jitter",
    "JitterRanges",
    "SourceParams",
    "apply_jitter",
    "device_names",
    "draw_jitter",
    "load_devices",
    "normalize_device_name",
    "render_bscan",
    "render_volume",
    "speckle_field",
    "stable_hash",
]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...
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
_NON_NEGATIVE = {"rolloff_db_per_mm", "gain_jitter_db"}


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


# --------------------------------------------------------------------------- randomness
def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (CRC-32 of the UTF-8 text)."""
    return zlib.crc32(str(text).encode("utf-8")) & 0xFFFFFFFF


def draw_jitter(device: DeviceParams, rng: np.random.Generator) -> Jitter:
    """Draw one within-device jitter (uniform in +- the YAML half-widths)."""
    r = device.jitter
    u = rng.uniform(-1.0, 1.0, size=6)
    return Jitter(
        psf_scale=1.0 + r.psf_frac * u[0],
        noise_floor_db=r.noise_floor_db * u[1],
        rolloff_db_per_mm=r.rolloff_db_per_mm * u[2],
        dynamic_range_db=r.dynamic_range_db * u[3],
        display_offset_db=r.display_offset_db * u[4],
        display_gamma=r.display_gamma * u[5],
    )


def apply_jitter(device: DeviceParams, jitter: Jitter | None) -> DeviceParams:
    """The device's parameters with ``jitter`` applied (nominal ones for ``None``)."""
    if jitter is None:
        return device
    return dataclasses.replace(
        device,
        psf_axial_fwhm_um=device.psf_axial_fwhm_um * jitter.psf_scale,
        psf_lateral_fwhm_um=device.psf_lateral_fwhm_um * jitter.psf_scale,
        noise_floor_db=device.noise_floor_db + jitter.noise_floor_db,
        rolloff_db_per_mm=max(0.0, device.rolloff_db_per_mm + jitter.rolloff_db_per_mm),
        dynamic_range_db=max(1.0, device.dynamic_range_db + jitter.dynamic_range_db),
        display_offset_db=device.display_offset_db + jitter.display_offset_db,
        display_gamma=max(0.05, device.display_gamma + jitter.display_gamma),
    )


# --------------------------------------------------------------------------- speckle
def _as_pair(sigma: float | tuple[float, float]) -> tuple[float, float]:
    if np.isscalar(sigma):
        return float(sigma), float(sigma)  # type: ignore[arg-type]
    a, b = sigma  # type: ignore[misc]
    return float(a), float(b)


def _kernel_energy(sigma: float) -> float:
    """Sum of squares of the 1D kernel that ``gaussian_filter1d`` applies with ``sigma``."""
    if sigma <= 0:
        return 1.0
    radius = int(4.0 * sigma + 0.5)
    delta = np.zeros(2 * radius + 1)
    delta[radius] = 1.0
    k = ndimage.gaussian_filter1d(delta, sigma, mode="constant", truncate=4.0)
    return float(np.sum(k * k))


def _complex_speckle(shape: tuple[int, int], sigma: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """``U = h * W``: PSF-filtered circular complex white Gaussian noise, ``E|U|^2 = 1`` (complex64)."""
    w = rng.standard_normal((2, *shape), dtype=np.float32)
    out = np.empty((2, *shape), dtype=np.float32)
    for c in range(2):
        ndimage.gaussian_filter(w[c], sigma=sigma, mode="wrap", truncate=4.0, output=out[c])
    # each quadrature has variance sum(k^2); |U|^2 then has mean 2*sum(k^2)
    energy = _kernel_energy(sigma[0]) * _kernel_energy(sigma[1])
    scale = np.float32(1.0 / math.sqrt(2.0 * energy))
    u = np.empty(shape, dtype=np.complex64)
    u.real = out[0] * scale
    u.imag = out[1] * scale
    return u


def speckle_field(
    shape: tuple[int, int],
    psf_sigma_px: float | tuple[float, float],
    rng: np.random.Generator,
    frames: int = 1,
) -> np.ndarray:
    """Multiplicative speckle intensity ``|U|^2`` (float32, unit mean).

    ``U`` is circular complex white Gaussian noise filtered by a Gaussian coherent PSF of
    standard deviation ``psf_sigma_px`` (scalar or ``(axial, lateral)`` in pixels), normalised to
    unit mean power. One frame is fully developed speckle (exponential, contrast 1); the mean of
    ``frames`` independent frames is Gamma(frames, 1/frames) with contrast ``1/sqrt(frames)``.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    sigma = _as_pair(psf_sigma_px)
    shape = (int(shape[0]), int(shape[1]))
    acc = np.zeros(shape, dtype=np.float32)
    for _ in range(frames):
        u = _complex_speckle(shape, sigma, rng)
        acc += u.real * u.real + u.imag * u.imag
    if frames > 1:
        acc /= np.float32(frames)
    return acc


# --------------------------------------------------------------------------- rendering
def _resize(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Order-1 resampling to ``shape`` keeping the field of view (pixel areas, edges clamped)."""
    if x.shape == shape:
        return x
    factors = (shape[0] / x.shape[0], shape[1] / x.shape[1])
    out = ndimage.zoom(x, factors, order=1, mode="nearest", grid_mode=True, prefilter=False)
    # zoom's output shape is round(n * (m / n)) == m exactly for these factors
    assert out.shape == shape, (out.shape, shape)
    return out


def _resolve(device: DeviceParams | str, source: SourceParams | None) -> tuple[DeviceParams, SourceParams]:
    if isinstance(device, str):
        src, devices = load_devices()
        device = devices[normalize_device_name(device)]
        source = source or src
    if source is None:
        source = load_devices()[0]
    return device, source


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 2 or min(img.shape) < 2:
        raise InputError(f"render_bscan: expected a 2D B-scan, got shape {img.shape}")
    img = img.astype(np.float32, copy=False)
    if not np.isfinite(img).all():
        raise InputError("render_bscan: image contains NaN or infinite pixels")
    return np.clip(img, 0.0, 1.0)


def render_bscan(
    image: np.ndarray,
    device: DeviceParams | str,
    rng: np.random.Generator,
    source: SourceParams | None = None,
    jitter: Jitter | None = None,
    gain_db: float | None = None,
) -> np.ndarray:
    """Render one source B-scan as ``device``.

    ``image``: float display values in [0, 1], shape (H, W), on the source grid. ``jitter``: the
    volume's within-device draw (``None`` = nominal parameters). ``gain_db``: this B-scan's gain
    offset; ``None`` draws it from ``rng`` (uniform +- ``device.gain_jitter_db``).
    Returns a float32 display image in [0, 1] of shape (H, W) (see the module's grid rule).
    """
    device, source = _resolve(device, source)
    dev = apply_jitter(device, jitter)
    img = _check_image(image)
    h, w = img.shape
    if gain_db is None:
        gain_db = float(rng.uniform(-1.0, 1.0)) * dev.gain_jitter_db if dev.gain_jitter_db > 0 else 0.0

    # (1) undo the source display mapping
    lin = img ** np.float32(source.display_exponent)
    # (2) device grid, same field of view
    hd = max(2, int(round(h * source.axial_spacing_um / dev.axial_spacing_um)))
    wd = max(2, int(round(w * source.lateral_spacing_um / dev.lateral_spacing_um)))
    lin = _resize(lin, (hd, wd))
    # (3) optics: coherent PSF sigma in device pixels; mean intensity blurred by |h|^2
    sig_amp = (
        dev.psf_axial_fwhm_um / _FWHM_PER_SIGMA / dev.axial_spacing_um,
        dev.psf_lateral_fwhm_um / _FWHM_PER_SIGMA / dev.lateral_spacing_um,
    )
    sig_int = (sig_amp[0] / math.sqrt(2.0), sig_amp[1] / math.sqrt(2.0))
    lin = ndimage.gaussian_filter(lin, sigma=sig_int, mode="nearest", truncate=4.0)
    # (5a) depth roll-off and gain on the signal
    depth_mm = (np.arange(hd, dtype=np.float32) + 0.5) * np.float32(dev.axial_spacing_um / 1000.0)
    att_db = -dev.rolloff_db_per_mm * depth_mm + np.float32(gain_db)
    lin *= (10.0 ** (att_db / 10.0)).astype(np.float32)[:, None]
    amp = np.sqrt(np.maximum(lin, 0.0))
    # (4) + (5b) speckle and complex Gaussian noise floor, per frame, averaged in intensity
    noise_sd = np.float32(math.sqrt(10.0 ** (dev.noise_floor_db / 10.0) / 2.0))  # per quadrature
    acc = np.zeros((hd, wd), dtype=np.float32)
    for _ in range(dev.frames_averaged):
        u = _complex_speckle((hd, wd), sig_amp, rng)
        n = rng.standard_normal((2, hd, wd), dtype=np.float32)
        re = amp * u.real + noise_sd * n[0]
        im = amp * u.imag + noise_sd * n[1]
        acc += re * re + im * im
    if dev.frames_averaged > 1:
        acc /= np.float32(dev.frames_averaged)
    # (6) device display: log compression over its own dynamic range, offset, gamma
    db = np.float32(10.0) * np.log10(np.maximum(acc, np.float32(1e-12)))
    black = dev.display_offset_db - dev.dynamic_range_db
    disp = np.clip((db - np.float32(black)) / np.float32(dev.dynamic_range_db), 0.0, 1.0)
    if dev.display_gamma != 1.0:
        disp = disp ** np.float32(dev.display_gamma)
    # grid rule: back to the source grid so that the label masks carry over exactly
    out = _resize(disp.astype(np.float32, copy=False), (h, w))
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def render_volume(
    images: list[np.ndarray],
    device: DeviceParams | str,
    seed: int,
    volume_key: str,
    source: SourceParams | None = None,
) -> list[np.ndarray]:
    """Render every B-scan of one volume as ``device``, deterministically.

    One within-device jitter is drawn per volume, one gain offset per B-scan, from
    ``np.random.default_rng([seed, stable_hash(device.name), stable_hash(volume_key)])``:
    the same (seed, device, volume_key, images) give bit-identical output.
    """
    device, source = _resolve(device, source)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"render_volume: seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([int(seed), stable_hash(device.name), stable_hash(volume_key)])
    jitter = draw_jitter(device, rng)
    return [render_bscan(img, device, rng, source, jitter) for img in images]
