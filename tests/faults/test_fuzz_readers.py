"""Random bytes and random headers into every reader: our own error type, never a crash or a hang.

And where a reader has a writer, round trips: what the writer writes, the reader reads back
unchanged (PNG B-scans and masks, MetaImage, NIfTI, model bundles, configs).

Every file lives under pytest's tmp_path (one fresh folder per example), never in /tmp directly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segclr.config import ConfigError, dump_config, from_dict, load_config
from segclr.io.bundle import load_bundle, save_bundle
from segclr.io.images import InputError, read_image, read_mask, write_image, write_mask
from segclr.io.volumes import Volume, read_volume, write_volume

# tmp_path is shared by a test's examples: each example empties it first (see _fresh)
FUZZ = settings(max_examples=60, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ROUND_TRIP = settings(FUZZ, max_examples=40)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fresh(tmp_path: Path) -> Path:
    """An empty folder for one example, inside the test's tmp_path."""
    d = tmp_path / "example"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = _fresh(tmp_path) / name
    path.write_bytes(data)
    return path


def _expect_our_error(fn, path: Path, errors=(InputError,)):
    try:
        fn(path)
    except errors:
        pass  # the clear, user-facing error


@FUZZ
@given(data=st.binary(max_size=2048), magic=st.booleans())
def test_png_readers(tmp_path, data, magic):
    path = _write(tmp_path, "x.png", (PNG_MAGIC if magic else b"") + data)
    _expect_our_error(read_image, path)
    _expect_our_error(lambda p: read_mask(p, 2), path)


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".nii", ".nii.gz", ".mha", ".tif"]))
def test_volume_readers_on_random_bytes(tmp_path, data, suffix):
    _expect_our_error(read_volume, _write(tmp_path, "x" + suffix, data))


header_line = st.sampled_from(["ObjectType", "NDims", "DimSize", "ElementType", "ElementDataFile", "ElementSpacing",
                               "Offset", "TransformMatrix", "BinaryDataByteOrderMSB", "HeaderSize",
                               "CompressedData", "ElementNumberOfChannels", "Nonsense"])
header_value = st.one_of(st.integers(-5, 70000).map(str),
                         st.sampled_from(["MET_UCHAR", "MET_FLOAT", "MET_SHORT", "MET_DOUBLE", "LOCAL", "x.raw",
                                          "True", "False", "1 2 3", "8 8 2", "0 0", "-1 4 4", "nan nan nan"]),
                         st.text(max_size=12))


@FUZZ
@given(lines=st.lists(st.tuples(header_line, header_value), max_size=10), raw=st.binary(max_size=1024))
def test_metaimage_random_headers(tmp_path, lines, raw):
    path = _write(tmp_path, "x.mhd", "\n".join(f"{k} = {v}" for k, v in lines).encode("utf-8", "replace"))
    (path.parent / "x.raw").write_bytes(raw)
    _expect_our_error(read_volume, path)


@FUZZ
@given(data=st.binary(max_size=2048), prefix=st.sampled_from([b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"]))
def test_bundle_loader(tmp_path, data, prefix):
    _expect_our_error(load_bundle, _write(tmp_path, "m.safetensors", prefix + data))


@FUZZ
@given(text=st.text(max_size=300))
def test_config_loader(tmp_path, text):
    path = _write(tmp_path, "c.yaml", text.encode("utf-8", "replace"))
    _expect_our_error(load_config, path, errors=(ConfigError,))


@pytest.mark.parametrize("reader", [read_image, read_volume, load_bundle])
def test_missing_files_are_our_error(reader, tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        reader(tmp_path / "nowhere.png")


# ----------------------------------------------------------------------------------- round trips
def _plane(dtype):
    return hnp.arrays(dtype, st.tuples(st.integers(8, 20), st.integers(8, 20)))


@ROUND_TRIP
@given(arr=_plane(np.uint8))
def test_png_bscan_round_trip_8bit(tmp_path, arr):
    path = _fresh(tmp_path) / "b.png"
    write_image(path, arr)
    back = read_image(path)
    assert back.dtype == np.float32 and back.shape == arr.shape
    assert np.array_equal(np.rint(back * 255).astype(np.uint8), arr)


@ROUND_TRIP
@given(arr=hnp.arrays(np.float32, st.tuples(st.integers(8, 16), st.integers(8, 16)),
                      elements=st.floats(0, 1, width=32)))
def test_png_bscan_round_trip_float(tmp_path, arr):
    path = _fresh(tmp_path) / "b.png"
    write_image(path, arr)
    back = read_image(path)
    assert back.min() >= 0 and back.max() <= 1
    assert np.abs(back - arr).max() <= 0.5 / 255 + 1e-6  # one 8-bit quantisation step, rounded


@ROUND_TRIP
@given(num_classes=st.integers(2, 255), data=st.data())
def test_png_mask_round_trip_and_label_range(tmp_path, num_classes, data):
    labels = data.draw(hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                                  elements=st.integers(0, num_classes)))
    path = _fresh(tmp_path) / "m.png"
    write_mask(path, labels)
    if labels.max() < num_classes:
        back = read_mask(path, num_classes)
        assert back.dtype == np.int64 and np.array_equal(back, labels)
    else:  # a label equal to num_classes is out of range
        with pytest.raises(InputError, match=f"mask values \\[{num_classes}\\]"):
            read_mask(path, num_classes)


def _direction(draw) -> np.ndarray:
    """A random orthonormal direction matrix (axis permutation with signs, then a small rotation)."""
    perm = draw(st.permutations([0, 1, 2]))
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3))
    d = np.zeros((3, 3))
    for col, row in enumerate(perm):
        d[row, col] = signs[col]
    angle = draw(st.floats(-0.5, 0.5))
    c, s_ = np.cos(angle), np.sin(angle)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]])
    return rot @ d


@st.composite
def volumes(draw):
    dtype = draw(st.sampled_from([np.uint8, np.int16, np.uint16, np.float32]))
    shape = draw(st.tuples(st.integers(1, 3), st.integers(2, 6), st.integers(2, 6)))
    arr = draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False,
                                                               allow_infinity=False)))
    spacing = tuple(draw(st.floats(0.001, 10.0)) for _ in range(3))
    origin = tuple(draw(st.floats(-500.0, 500.0)) for _ in range(3))
    return Volume(arr, spacing, origin, _direction(draw))


@ROUND_TRIP
@given(vol=volumes(), suffix=st.sampled_from([".mhd", ".mha", ".nii", ".nii.gz"]))
def test_volume_round_trip(tmp_path, vol, suffix):
    path = _fresh(tmp_path) / ("case" + suffix)
    write_volume(path, vol)
    back = read_volume(path)
    assert back.shape == vol.shape
    assert back.array.dtype == vol.array.dtype
    assert np.array_equal(back.array, vol.array)
    # MetaImage keeps geometry as decimal text (repr), NIfTI as float32 in the header
    tol = {"rtol": 1e-6, "atol": 1e-9} if suffix in (".mhd", ".mha") else {"rtol": 1e-5, "atol": 1e-4}
    np.testing.assert_allclose(back.spacing_mm, vol.spacing_mm, **tol)
    np.testing.assert_allclose(back.origin, vol.origin, **tol)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-5)


@ROUND_TRIP
@given(values=st.dictionaries(st.text("abcdefgh_.", min_size=1, max_size=8),
                              st.one_of(st.integers(-10**6, 10**6), st.text(max_size=10), st.booleans()),
                              max_size=4),
       shape=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_bundle_round_trip(tmp_path, values, shape):
    path = _fresh(tmp_path) / "model.safetensors"
    state = {"w": torch.arange(shape[0] * shape[1], dtype=torch.float32).reshape(shape), "b": torch.ones(3)}
    meta = {"model": {"num_classes": 2, **values}, "preprocess": {"input_height": 32}, "classes": ["bg", "fluid"],
            "training": values}
    save_bundle(path, state, meta)
    tensors, back = load_bundle(path)
    assert set(tensors) == {"w", "b"} and all(torch.equal(tensors[k], state[k]) for k in state)
    assert back == meta


@ROUND_TRIP
@given(steps=st.integers(1, 10**6), lr=st.floats(1e-8, 1.0), mode=st.sampled_from(["supervised", "segclr_uda",
                                                                                  "segclr_dg", "upper_bound"]),
       pairs=st.sampled_from(["a", "s", "s+a"]), gamma=st.tuples(st.floats(0.1, 1.0), st.floats(1.0, 3.0)),
       targets=st.lists(st.sampled_from(["cirrus_like", "topcon_like"]), min_size=1, max_size=2))
def test_config_round_trip(tmp_path, steps, lr, mode, pairs, gamma, targets):
    cfg = from_dict({"trainer": {"max_steps": steps, "lr": lr}, "objective": {"mode": mode},
                     "data": {"pairs": pairs, "target_domains": targets}, "augment": {"gamma": list(gamma)}})
    path = _fresh(tmp_path) / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
