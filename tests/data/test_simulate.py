"""Tests of the physics-based OCT device simulator (segclr.data.simulate)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from segclr.data.simulate import (
    DeviceParams,
    SourceParams,
    device_names,
    load_devices,
    normalize_device_name,
    render_bscan,
    render_volume,
    speckle_field,
    stable_hash,
)
from segclr.io.images import InputError

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "src" / "segclr" / "resources" / "duke_dme_fluid" / "images"


def _real(name: str = "subject01_slice05.png") -> np.ndarray:
    with Image.open(IMAGES / name) as im:
        return (np.asarray(im.convert("L"), dtype=np.float32) / 255.0)[:, 96:672]


def _phantom(h: int = 248, w: int = 192) -> np.ndarray:
    """No signal on top (display 0: noise floor only), a homogeneous 'retina' band (0.55)
    holding a dark 'cyst' (0.15), and a weak band below."""
    img = np.zeros((h, w), dtype=np.float32)
    img[100:200] = 0.55
    img[200:] = 0.15
    img[130:170, 60:120] = 0.15
    return img


# ---------------------------------------------------------------- speckle statistics
def test_speckle_single_frame_is_fully_developed():
    rng = np.random.default_rng(0)
    s = speckle_field((512, 512), (1.2, 0.8), rng, frames=1)
    assert s.shape == (512, 512) and s.dtype == np.float32
    assert abs(s.mean() - 1.0) < 0.03
    assert abs(s.std() / s.mean() - 1.0) < 0.1
    # exponential intensity: P(I > t) = exp(-t)
    assert abs((s > 1.0).mean() - math.exp(-1.0)) < 0.02
    assert abs((s > 2.0).mean() - math.exp(-2.0)) < 0.02
    assert s.min() >= 0.0


def test_speckle_frame_averaging_reduces_contrast():
    rng = np.random.default_rng(1)
    s = speckle_field((512, 512), 1.0, rng, frames=4)
    assert abs(s.mean() - 1.0) < 0.03
    assert abs(s.std() / s.mean() - 1.0 / math.sqrt(4)) < 0.05
    # Gamma(4, 1/4) has variance 1/4 and skewness 2/sqrt(4) = 1
    z = (s - s.mean()) / s.std()
    assert abs(float((z**3).mean()) - 1.0) < 0.2


def test_speckle_grain_follows_psf():
    """Neighbouring pixels are correlated more strongly along the wider PSF axis."""
    s = speckle_field((512, 512), (2.0, 0.5), np.random.default_rng(2))
    z = s - s.mean()
    corr_axial = float((z[1:] * z[:-1]).mean() / z.var())
    corr_lateral = float((z[:, 1:] * z[:, :-1]).mean() / z.var())
    assert corr_axial > 0.7
    assert corr_lateral < 0.5


# ---------------------------------------------------------------- loading and names
def test_packaged_devices_load():
    source, devices = load_devices()
    assert isinstance(source, SourceParams)
    assert source.axial_spacing_um == pytest.approx(3.87)
    assert source.lateral_spacing_um == pytest.approx(11.3)
    assert source.display_exponent == pytest.approx(4.0)
    assert {"cirrus_like", "topcon_like"} <= set(devices)
    assert set(device_names()) == set(devices)
    for name, dev in devices.items():
        assert isinstance(dev, DeviceParams) and dev.name == name
        assert dev.frames_averaged >= 1 and dev.dynamic_range_db > 0
    cirrus = devices["cirrus_like"]
    assert cirrus.axial_spacing_um == pytest.approx(2000 / 1024, rel=1e-3)
    assert cirrus.lateral_spacing_um == pytest.approx(6000 / 512, rel=1e-3)
    assert devices["topcon_like"].axial_spacing_um == pytest.approx(2300 / 885, rel=1e-3)


def test_normalize_device_name():
    assert normalize_device_name("cirrus-like") == "cirrus_like"
    assert normalize_device_name("cirrus_like") == "cirrus_like"
    assert normalize_device_name("Topcon-Like") == "topcon_like"
    assert normalize_device_name("spectralis", include_source=True) == "spectralis"
    with pytest.raises(InputError) as err:
        normalize_device_name("heidelberg-like")
    assert "cirrus_like" in str(err.value) and "topcon_like" in str(err.value)


def _packaged_yaml() -> dict:
    return yaml.safe_load((ROOT / "src" / "segclr" / "resources" / "devices.yaml").read_text())


def test_loader_rejects_unknown_key(tmp_path):
    raw = _packaged_yaml()
    raw["devices"]["cirrus_like"]["speckle_grain_px"] = 3
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError) as err:
        load_devices(path)
    assert "speckle_grain_px" in str(err.value) and str(path) in str(err.value)

    raw = _packaged_yaml()
    raw["devices"]["topcon_like"]["jitter"]["wobble"] = 1.0
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="wobble"):
        load_devices(path)


def test_loader_rejects_missing_key_and_bad_values(tmp_path):
    path = tmp_path / "devices.yaml"
    raw = _packaged_yaml()
    del raw["devices"]["cirrus_like"]["noise_floor_db"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="noise_floor_db"):
        load_devices(path)

    raw = _packaged_yaml()
    raw["devices"]["cirrus_like"]["dynamic_range_db"] = -5
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="dynamic_range_db"):
        load_devices(path)

    raw = _packaged_yaml()
    raw["devices"]["topcon_like"]["frames_averaged"] = "many"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="frames_averaged"):
        load_devices(path)

    raw = _packaged_yaml()
    del raw["source"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="source"):
        load_devices(path)

    with pytest.raises(InputError, match="not found"):
        load_devices(tmp_path / "nope.yaml")


# ---------------------------------------------------------------- rendering
@pytest.fixture(scope="module")
def devices():
    return load_devices()


def test_render_shape_dtype_range(devices):
    source, devs = devices
    img = _real()
    for dev in devs.values():
        out = render_bscan(img, dev, np.random.default_rng(0), source)
        assert out.shape == img.shape
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert out.std() > 0.05  # not a flat image


def test_render_accepts_names_and_odd_shapes(devices):
    source, _ = devices
    img = np.random.default_rng(3).uniform(0, 1, (37, 53)).astype(np.float32)
    out = render_bscan(img, "cirrus-like", np.random.default_rng(0), source)
    assert out.shape == (37, 53) and out.dtype == np.float32
    with pytest.raises(InputError):
        render_bscan(np.zeros((4, 4, 3), np.float32), "cirrus_like", np.random.default_rng(0), source)


def test_render_volume_is_deterministic(devices):
    source, devs = devices
    imgs = [_real("subject01_slice05.png"), _real("subject01_slice06.png")]
    dev = devs["cirrus_like"]
    a = render_volume(imgs, dev, 0, "patient01", source)
    b = render_volume(imgs, dev, 0, "patient01", source)
    assert len(a) == 2
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    c = render_volume(imgs, dev, 1, "patient01", source)
    d = render_volume(imgs, dev, 0, "patient02", source)
    for x, y, z in zip(a, c, d):
        assert not np.array_equal(x, y)
        assert not np.array_equal(x, z)
    # the device enters the seed as well
    e = render_volume(imgs, devs["topcon_like"], 0, "patient01", source)
    assert not np.array_equal(a[0], e[0])
    # the two B-scans of one volume get different speckle
    same = render_volume([imgs[0], imgs[0]], dev, 0, "patient01", source)
    assert not np.array_equal(same[0], same[1])


def test_stable_hash_is_crc32():
    assert stable_hash("cirrus_like") == stable_hash("cirrus_like")
    assert stable_hash("patient01") != stable_hash("patient02")
    assert stable_hash("abc") == 891568578  # zlib.crc32(b"abc")


def _band_stats(out: np.ndarray) -> dict[str, float]:
    vitreous = out[10:90, 10:-10]  # input 0: only the device's noise floor
    band = out[105:125, 10:-10]  # homogeneous 'retina' above the cyst
    cyst = out[135:165, 65:115]
    return {
        "floor_mean": float(vitreous.mean()),
        "floor_std": float(vitreous.std()),
        "band_mean": float(band.mean()),
        "band_contrast": float(band.std() / band.mean()),
        "cyst_mean": float(cyst.mean()),
    }


def test_devices_differ_from_input_and_each_other(devices):
    source, devs = devices
    img = _phantom()
    src_stats = _band_stats(img)
    stats = {}
    for name, dev in devs.items():
        outs = render_volume([img, img], dev, 0, "phantom", source)
        stats[name] = {k: float(np.mean([_band_stats(o)[k] for o in outs])) for k in src_stats}
        s = stats[name]
        # speckle: the homogeneous band is no longer flat
        assert s["band_contrast"] > 0.1 > src_stats["band_contrast"]
        # the noise floor lifts the empty background and makes it grainy
        assert s["floor_mean"] > src_stats["floor_mean"] + 0.03
        assert s["floor_std"] > 0.03
        # the retina stays brighter than the vitreous and than the cyst (fluid stays dark)
        assert s["band_mean"] > s["floor_mean"] + 0.1
        assert s["band_mean"] > s["cyst_mean"] + 0.1
    c, t = stats["cirrus_like"], stats["topcon_like"]
    assert abs(c["floor_mean"] - t["floor_mean"]) > 0.05
    assert abs(c["band_contrast"] - t["band_contrast"]) > 0.05 or abs(c["band_mean"] - t["band_mean"]) > 0.05


def test_rolloff_darkens_depth(devices):
    source, devs = devices
    img = np.full((496, 128), 0.6, dtype=np.float32)
    for dev in devs.values():
        out = render_bscan(img, dev, np.random.default_rng(0), source, gain_db=0.0)
        top, bottom = out[20:80].mean(), out[-80:-20].mean()
        assert top > bottom + 0.02


def test_real_fluid_stays_darker_than_tissue(devices):
    source, devs = devices
    img = _real()
    with Image.open(IMAGES.parent / "masks" / "subject01_slice05.png") as im:
        mask = np.asarray(im)[:, 96:672] == 1
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=6) & ~ndimage.binary_dilation(mask, iterations=2)
    for dev in devs.values():
        out = render_bscan(img, dev, np.random.default_rng(0), source)
        assert out[ring].mean() > out[mask].mean() + 0.03
        assert not np.allclose(out, img, atol=0.05)
