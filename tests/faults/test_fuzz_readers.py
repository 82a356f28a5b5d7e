"""Random bytes and random headers into every reader: our own error type, never a crash or a hang."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segclr.config import ConfigError, load_config
from segclr.io.bundle import load_bundle
from segclr.io.images import InputError, read_image, read_mask
from segclr.io.volumes import read_volume

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(name: str, data: bytes) -> Path:
    d = Path(tempfile.mkdtemp(prefix="segclr-fuzz-"))
    path = d / name
    path.write_bytes(data)
    return path


def _expect_our_error(fn, path: Path, errors=(InputError,)):
    try:
        fn(path)
    except errors:
        pass  # the clear, user-facing error


@FUZZ
@given(data=st.binary(max_size=2048), magic=st.booleans())
def test_png_readers(data, magic):
    path = _write("x.png", (PNG_MAGIC if magic else b"") + data)
    _expect_our_error(read_image, path)
    _expect_our_error(lambda p: read_mask(p, 2), path)


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".nii", ".nii.gz", ".mha", ".tif"]))
def test_volume_readers_on_random_bytes(data, suffix):
    _expect_our_error(read_volume, _write("x" + suffix, data))


header_line = st.sampled_from(["ObjectType", "NDims", "DimSize", "ElementType", "ElementDataFile", "ElementSpacing",
                               "Offset", "TransformMatrix", "BinaryDataByteOrderMSB", "HeaderSize",
                               "CompressedData", "ElementNumberOfChannels", "Nonsense"])
header_value = st.one_of(st.integers(-5, 70000).map(str),
                         st.sampled_from(["MET_UCHAR", "MET_FLOAT", "MET_SHORT", "MET_DOUBLE", "LOCAL", "x.raw",
                                          "True", "False", "1 2 3", "8 8 2", "0 0", "-1 4 4", "nan nan nan"]),
                         st.text(max_size=12))


@FUZZ
@given(lines=st.lists(st.tuples(header_line, header_value), max_size=10), raw=st.binary(max_size=1024))
def test_metaimage_random_headers(lines, raw):
    path = _write("x.mhd", "\n".join(f"{k} = {v}" for k, v in lines).encode("utf-8", "replace"))
    (path.parent / "x.raw").write_bytes(raw)
    _expect_our_error(read_volume, path)


@FUZZ
@given(data=st.binary(max_size=2048), prefix=st.sampled_from([b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"]))
def test_bundle_loader(data, prefix):
    _expect_our_error(load_bundle, _write("m.safetensors", prefix + data))


@FUZZ
@given(text=st.text(max_size=300))
def test_config_loader(text):
    path = _write("c.yaml", text.encode("utf-8", "replace"))
    _expect_our_error(load_config, path, errors=(ConfigError,))


@pytest.mark.parametrize("reader", [read_image, read_volume, load_bundle])
def test_missing_files_are_our_error(reader, tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        reader(tmp_path / "nowhere.png")
