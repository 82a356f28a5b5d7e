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

**Grid rule.** With ``geometry="source"`` the display image is resampled back after step 6
(order 1, same field of view) to the *source* grid, so the output has exactly the input's shape
and the real label masks carry over pixel for pixel: the device differs in appearance only.
With ``geometry="native"`` the image stays on the device's own grid (its row and A-scan spacing,
its depth range and its lateral field of view, :mod:`segclr.data.geometry`), as a real export
would, and the labels are mapped the same way (nearest neighbour).

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
import zlib

import numpy as np
from scipy import ndimage

from segclr.data.devices import (DeviceParams, Jitter, JitterRanges, SourceParams, device_names, load_devices,
                                 normalize_device_name)
from segclr.data.geometry import GEOMETRIES, NativeGrid, native_grid
from segclr.io.images import InputError

__all__ = [
    "DeviceParams",
    "Jitter",
    "JitterRanges",
    "SourceParams",
    "apply_jitter",
    "device_grid",
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


def device_grid(shape: tuple[int, int], device: DeviceParams | str, source: SourceParams | None = None) -> NativeGrid:
    """Where a source B-scan of ``shape`` lands on ``device``'s native grid (see :mod:`segclr.data.geometry`)."""
    device, source = _resolve(device, source)
    return native_grid(shape, (source.axial_spacing_um, source.lateral_spacing_um),
                       (device.axial_spacing_um, device.lateral_spacing_um), device.depth_range_mm,
                       device.field_of_view_mm)


def _check_geometry(geometry: str) -> str:
    if geometry not in GEOMETRIES:
        raise InputError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    return geometry


def render_bscan(
    image: np.ndarray,
    device: DeviceParams | str,
    rng: np.random.Generator,
    source: SourceParams | None = None,
    jitter: Jitter | None = None,
    gain_db: float | None = None,
    geometry: str = "source",
) -> np.ndarray:
    """Render one source B-scan as ``device``.

    ``image``: float display values in [0, 1], shape (H, W), on the source grid. ``jitter``: the
    volume's within-device draw (``None`` = nominal parameters). ``gain_db``: this B-scan's gain
    offset; ``None`` draws it from ``rng`` (uniform +- ``device.gain_jitter_db``).
    ``geometry="source"``: returns a float32 display image in [0, 1] of shape (H, W) (the module's
    grid rule). ``"native"``: the image stays on the device's own grid (:func:`device_grid`: its
    spacing, depth range and field of view); map the labels with ``device_grid(...).mask``.
    """
    _check_geometry(geometry)
    device, source = _resolve(device, source)
    img = _check_image(image)
    grid = device_grid(img.shape, device, source)
    dev = apply_jitter(device, jitter)
    h, w = img.shape
    if gain_db is None:
        gain_db = float(rng.uniform(-1.0, 1.0)) * dev.gain_jitter_db if dev.gain_jitter_db > 0 else 0.0

    # (1) undo the source display mapping
    lin = img ** np.float32(source.display_exponent)
    # (2) device grid: same field of view (source geometry), or the device's own field (native)
    if geometry == "native":
        lin = grid.image(lin, _resize)  # rows below the source's depth carry no signal
    else:
        hd = max(2, int(round(h * source.axial_spacing_um / dev.axial_spacing_um)))
        wd = max(2, int(round(w * source.lateral_spacing_um / dev.lateral_spacing_um)))
        lin = _resize(lin, (hd, wd))
    hd, wd = lin.shape
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
    if geometry == "native":
        return np.clip(disp, 0.0, 1.0).astype(np.float32, copy=False)
    # grid rule: back to the source grid so that the label masks carry over exactly
    out = _resize(disp.astype(np.float32, copy=False), (h, w))
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def render_volume(
    images: list[np.ndarray],
    device: DeviceParams | str,
    seed: int,
    volume_key: str,
    source: SourceParams | None = None,
    geometry: str = "source",
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
    return [render_bscan(img, device, rng, source, jitter, geometry=geometry) for img in images]
