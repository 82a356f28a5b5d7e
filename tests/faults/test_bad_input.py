"""Every command refuses bad input with exit code 2, one line naming the file, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segclr.cli import main
from segclr.data.domains import embedded_data_dir

NAME = "subject09_slice05.png"
TINY = ["--set", "data.crop_size=32", "--set", "data.batch_size=2", "--set", "data.input_height=64",
        "--set", "model.base_channels=4", "--set", "model.depth=2", "--set", "model.head_hidden=16",
        "--set", "model.embedding_dim=8", "--set", "trainer.progress_bar=false", "--set", "trainer.max_steps=1",
        "--set", "objective.mode=supervised"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "run"
    assert main(["fit", "--out", str(out), *TINY]) == 0
    return out / "model.safetensors"


def _scans(root: Path) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        shutil.copy(embedded_data_dir() / sub / NAME, root / sub / NAME)
    return root


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def case_missing_folder(t: Path):
    return ["evaluate", "--images", str(t / "nowhere"), "--masks", str(t / "nowhere")], t / "nowhere"


def case_empty_folder(t: Path):
    (t / "empty").mkdir()
    return ["predict", "--input", str(t / "empty"), "--output", str(t / "out")], t / "empty"


def case_truncated_image(t: Path):
    s = _scans(t / "s")
    data = (s / "images" / NAME).read_bytes()
    (s / "images" / NAME).write_bytes(data[: len(data) // 2])
    return ["predict", "--input", str(s / "images"), "--output", str(t / "out")], s / "images" / NAME


def case_unreadable_image(t: Path):
    s = _scans(t / "s")
    (s / "images" / "junk.png").write_bytes(b"\x89PNG not really")
    return ["predict", "--input", str(s / "images"), "--output", str(t / "out")], s / "images" / "junk.png"


def case_image_without_mask(t: Path):
    s = _scans(t / "s")
    (s / "masks" / NAME).unlink()
    return ["evaluate", "--images", str(s / "images"), "--masks", str(s / "masks"),
            "--out", str(t / "out" / "s.json")], \
        s / "masks" / NAME


def case_shape_mismatch(t: Path):
    s = _scans(t / "s")
    _png(s / "masks" / NAME, np.zeros((100, 100), np.uint8))
    return ["evaluate", "--images", str(s / "images"), "--masks", str(s / "masks"),
            "--out", str(t / "out" / "s.json")], \
        NAME


def case_mask_values_outside_labels(t: Path):
    s = _scans(t / "s")
    _png(s / "masks" / NAME, np.full((496, 768), 7, np.uint8))
    return ["evaluate", "--images", str(s / "images"), "--masks", str(s / "masks"),
            "--out", str(t / "out" / "s.json")], \
        s / "masks" / NAME


def case_colour_image(t: Path):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200
    _png(t / "in" / "c.png", rgb)
    return ["predict", "--input", str(t / "in"), "--output", str(t / "out")], t / "in" / "c.png"


def case_nan_pixels(t: Path):
    (t / "in").mkdir()
    arr = np.full((64, 64), 0.5, np.float32)
    arr[3, 3] = np.nan
    Image.fromarray(arr, mode="F").save(t / "in" / "n.tif")
    return ["predict", "--input", str(t / "in"), "--output", str(t / "out")], t / "in" / "n.tif"


def case_mhd_header_lies(t: Path):
    (t / "in").mkdir()
    (t / "in" / "oct.raw").write_bytes(bytes(4 * 8 * 8))
    (t / "in" / "oct.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 8 8 5\nElementType = MET_UCHAR\n"
                                      "ElementDataFile = oct.raw\n")
    return ["predict", "--input", str(t / "in" / "oct.mhd"), "--output", str(t / "out")], t / "in" / "oct"


def case_config_unknown_key(t: Path):
    (t / "c.yaml").write_text("trainer:\n  max_step: 3\n")
    return ["fit", "--config", str(t / "c.yaml"), "--out", str(t / "out")], "trainer.max_step"


def case_config_wrong_type(t: Path):
    (t / "c.yaml").write_text("objective:\n  lambda_sup: lots\n")
    return ["fit", "--config", str(t / "c.yaml"), "--out", str(t / "out")], "objective.lambda_sup"


def case_checkpoint_not_ours(t: Path):
    from safetensors.torch import save_file
    import torch

    save_file({"w": torch.zeros(2)}, str(t / "other.safetensors"))
    s = _scans(t / "s")
    return ["predict", "--checkpoint", str(t / "other.safetensors"), "--input", str(s / "images"),
            "--output", str(t / "out")], t / "other.safetensors"


def case_checkpoint_random_bytes(t: Path):
    (t / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(300))
    s = _scans(t / "s")
    return ["predict", "--checkpoint", str(t / "model.safetensors"), "--input", str(s / "images"),
            "--output", str(t / "out")], t / "model.safetensors"


def case_checkpoint_is_a_pickle(t: Path):
    import pickle

    (t / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": {}}))
    s = _scans(t / "s")
    return ["predict", "--checkpoint", str(t / "evil.ckpt"), "--input", str(s / "images"),
            "--output", str(t / "out")], t / "evil.ckpt"


def case_output_inside_input(t: Path):
    s = _scans(t / "s")
    return ["predict", "--input", str(s / "images"), "--output", str(s / "images" / "out")], s / "images"


def _volume(path: Path, origin=(0.0, 0.0, 0.0)) -> Path:
    from segclr.io.volumes import Volume, write_volume

    arr = np.zeros((3, 64, 64), np.uint8)
    arr[1, 20:30, 20:30] = 1
    return write_volume(path, Volume(arr, (0.12, 0.0039, 0.0113), origin))


def case_colour_palette_image(t: Path):
    im = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) % 4, (64, 1)), mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    (t / "in").mkdir()
    im.save(t / "in" / "p.png")
    return ["predict", "--input", str(t / "in"), "--output", str(t / "out")], t / "in" / "p.png"


def case_two_bscans_share_a_name(t: Path):
    _png(t / "in" / "b01.png", np.zeros((64, 64), np.uint8))
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(t / "in" / "b01.tif")
    return ["predict", "--input", str(t / "in"), "--output", str(t / "out")], t / "in" / "b01.png"


def case_csv_collides_with_the_label_volume(t: Path):
    src = _volume(t / "in" / "v.mhd")
    return ["predict", "--input", str(src), "--output", str(t / "out" / "p.mhd"), "--csv", str(t / "out" / "p.mhd")], \
        t / "out" / "p.mhd"


def case_nnunet_train_and_test_share_a_case_id(t: Path):
    from segclr.io.nnunet import write_dataset
    from segclr.io.volumes import read_volume

    vol = read_volume(_volume(t / "v.nii.gz"))
    (t / "v.nii.gz").unlink()
    write_dataset(t / "ds", [("c1", vol, vol, None), ("c1", vol, None, None)], {"background": 0, "fluid": 1})
    return ["predict", "--input", str(t / "ds"), "--output", str(t / "out")], t / "ds" / "imagesTs" / "c1_0000.nii.gz"


def case_jpeg_mask(t: Path):
    _png(t / "ref" / "b.png", np.zeros((64, 64), np.uint8))
    (t / "pred").mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(t / "pred" / "b.jpg")
    return ["evaluate", "--pred", str(t / "pred"), "--ref", str(t / "ref")], t / "pred" / "b.jpg"


def case_prediction_placed_elsewhere(t: Path):
    pred, ref = _volume(t / "p.nii.gz", origin=(0.0, 5.0, 0.0)), _volume(t / "r.mhd")
    return ["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(t / "out" / "s.json")], pred


def case_no_prediction_shares_a_reference_name(t: Path):
    _png(t / "ref" / "b.png", np.zeros((64, 64), np.uint8))
    _png(t / "pred" / "c.png", np.zeros((64, 64), np.uint8))
    return ["evaluate", "--pred", str(t / "pred"), "--ref", str(t / "ref"), "--out", str(t / "out" / "s.json")], \
        t / "pred"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__[5:])
def test_bad_input_exit_2_names_file_writes_nothing(case, tmp_path, bundle, capsys):
    argv, named = case(tmp_path)
    if argv[0] in ("predict", "evaluate") and "--checkpoint" not in argv and "--pred" not in argv:
        argv += ["--checkpoint", str(bundle)]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert str(named) in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, nothing removed


def test_16_bit_input_is_handled(tmp_path, bundle):
    (tmp_path / "in").mkdir()
    arr = (np.random.default_rng(0).random((64, 96)) * 65535).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "in" / "b.png")
    assert main(["predict", "--checkpoint", str(bundle), "--input", str(tmp_path / "in"),
                 "--output", str(tmp_path / "out")]) == 0
    mask = np.asarray(Image.open(tmp_path / "out" / "b.png"))
    assert mask.shape == (64, 96)


def test_single_bscan_file_is_accepted_as_input(tmp_path, bundle, capsys):
    s = _scans(tmp_path / "s")
    assert main(["predict", "--checkpoint", str(bundle), "--input", str(s / "images" / NAME),
                 "--output", str(tmp_path / "out")]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / NAME)).shape == (496, 768)
    assert f"wrote mask {tmp_path / 'out' / NAME}" in capsys.readouterr().out


def test_predict_never_touches_inputs(tmp_path, bundle):
    s = _scans(tmp_path / "s")
    stamp = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in s.rglob("*") if p.is_file()}
    assert main(["predict", "--checkpoint", str(bundle), "--input", str(s / "images"),
                 "--output", str(tmp_path / "out")]) == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in s.rglob("*") if p.is_file()} == stamp
