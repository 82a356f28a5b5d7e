"""Native device grids: the simulator renders each device on its own pixel grid, labels follow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segclr.data.domains import DomainBank, source_spacing_um
from segclr.data.geometry import native_grid
from segclr.data.preprocess import Preprocessing, check_spacing, resize_mask
from segclr.data.simulate import device_grid, load_devices, render_bscan
from segclr.io.images import InputError


def test_native_grid_keeps_physical_extent_and_crops_the_field():
    # Duke: 496 x 576 at 3.87 x 11.3 um = 1.92 mm x 6.51 mm; Cirrus: 2.0 mm over 1024 rows, 6 mm over 512
    g = native_grid((496, 576), (3.87, 11.3), (1.953, 11.72), depth_range_mm=2.0, field_of_view_mm=6.0)
    assert g.shape == (1024, 512)
    assert g.col_stop - g.col_start == round(6000 / 11.3)  # 531 source columns = 6 mm, centred
    assert g.col_start == (576 - 531) // 2
    assert g.content_rows == round(496 * 3.87 / 1.953) and g.row_stop == 496  # 983 rows of tissue, 41 padded
    # a device that sees less depth cuts the source from the top
    shallow = native_grid((496, 576), (3.87, 11.3), (3.87, 11.3), depth_range_mm=1.0)
    assert shallow.rows == shallow.content_rows == round(1000 / 3.87) and shallow.row_stop == shallow.rows


def test_packaged_devices_render_on_their_published_grids():
    src, devices = load_devices()
    expected = {"cirrus_like": (1024, 512), "topcon_like": (885, 512)}
    for name, shape in expected.items():
        grid = device_grid((496, 576), devices[name], src)
        assert grid.shape == shape, name
        img = render_bscan(np.full((496, 576), 0.5, np.float32), devices[name], np.random.default_rng(0),
                           src, geometry="native")
        assert img.shape == shape and img.dtype == np.float32 and 0 <= img.min() <= img.max() <= 1
    # source geometry keeps the source grid
    img = render_bscan(np.full((496, 576), 0.5, np.float32), "cirrus_like", np.random.default_rng(0))
    assert img.shape == (496, 576)
    with pytest.raises(InputError, match="geometry"):
        render_bscan(np.zeros((8, 8)), "cirrus_like", np.random.default_rng(0), geometry="bent")


def test_native_bank_maps_labels_with_the_image(bank):
    native, same = bank, DomainBank(0, geometry="source")  # the session's bank renders native grids
    assert native.geometry == "native"
    src = same.volumes("spectralis", "test")[0]
    vol = native.volumes("cirrus_like", "test")[0]
    assert vol.spacing_um == (1.953, 11.72) and src.spacing_um == source_spacing_um() == (3.87, 11.3)
    for img, msk, ref in zip(vol.images, vol.masks, src.masks):
        assert img.shape == msk.shape == (1024, 512)
        grid = native_grid(ref.shape, src.spacing_um, vol.spacing_um, 2.0, 6.0)
        # fluid area in mm^2 is kept (nearest-neighbour resampling of the cropped field)
        area_src = grid.crop(ref).sum() * 3.87 * 11.3
        area_dev = msk.sum() * 1.953 * 11.72
        assert area_dev == pytest.approx(area_src, rel=0.03, abs=300.0)
    assert same.volumes("cirrus_like", "test")[0].images[0].shape == src.images[0].shape


def test_mask_resampled_to_target_spacing_and_back_keeps_its_foreground(bank):
    prep = Preprocessing(248, 16, (7.74, 22.6))
    kept = total = after = 0
    for vol in bank.volumes("cirrus_like", "test"):
        for m in vol.masks:
            size = prep.working_size(*m.shape, vol.spacing_um)
            t = torch.from_numpy(m)[None]
            back = resize_mask(resize_mask(t, size), m.shape)[0].numpy()
            kept += int(((back > 0) & (m > 0)).sum())
            total += int((m > 0).sum())
            after += int((back > 0).sum())
    # the fluid area survives to within 1 %; pixel for pixel, a 4x coarser grid moves pocket borders by up
    # to half a working pixel, so ~96 % of the original pixels are kept exactly (docs/geometry.md)
    assert total > 0 and abs(after / total - 1) <= 0.01
    assert kept / total >= 0.95


def test_working_size_follows_spacing_and_falls_back_to_height():
    prep = Preprocessing(248, 16, (7.74, 22.6))
    assert prep.working_size(496, 576, (3.87, 11.3)) == (248, 288)      # Spectralis: half resolution
    assert prep.working_size(1024, 512, (1.953, 11.72)) == (258, 266)  # Cirrus: the same anatomy size
    assert prep.working_size(1024, 512) == (248, 124)                   # unknown spacing: the height rule
    assert Preprocessing(248, 16).working_size(1024, 512, (1.953, 11.72)) == (248, 124)  # old bundles


@pytest.mark.parametrize("bad", [(0, 11.0), (-1, 11.0), (float("nan"), 11.0), (1500.0, 11.0), (3.0,), "x"])
def test_spacing_that_makes_no_sense_is_refused_naming_the_input(bad):
    with pytest.raises(InputError, match="scan.mhd"):
        check_spacing(bad, "scan.mhd")


def test_training_from_a_dataset_resamples_each_volume_from_its_own_spacing(tmp_path, make_config):
    import yaml

    from segclr.data.datamodule import SegCLRDataModule
    from segclr.io.metaimage import write_metaimage
    from segclr.io.volumes import Volume

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 255, (3, 64, 96), dtype=np.uint8)
    write_metaimage(tmp_path / "a" / "oct.mhd", Volume(coarse, (0.1, 0.004, 0.012)))
    write_metaimage(tmp_path / "a" / "reference.mhd", Volume(np.zeros_like(coarse), (0.1, 0.004, 0.012)))
    fine = np.repeat(coarse, 2, axis=1)  # the same field at twice the rows: another device's grid
    write_metaimage(tmp_path / "b" / "oct.mhd", Volume(fine, (0.1, 0.002, 0.012)))
    spec = {"domains": {"dev_a": [{"folder": "a", "role": "source_train"}],
                        "dev_b": [{"folder": "b", "role": "target_train"}]}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(spec))
    cfg = make_config(objective={"mode": "segclr_uda"}, data={
        "dataset": str(tmp_path / "d.yaml"), "source_domain": "dev_a", "target_domains": ["dev_b"],
        "eval_domains": ["dev_a"], "input_height": 32})
    dm = SegCLRDataModule(cfg)
    dm.setup("fit")
    # target spacing = the labeled data's spacing at 32 rows: 4 um x 64/32 = 8 um per row, 24 um per column
    assert dm.prep.target_spacing_um == pytest.approx((8.0, 24.0))
    shapes = {d: vols[0].images.shape[-2:] for d, vols in dm._unlabeled.items()}
    assert shapes["dev_a"] == shapes["dev_b"] == (32, 48)  # both devices: the same anatomy size in pixels
    # spacing-unaware: the height rule, whatever the grid
    cfg_off = make_config(objective={"mode": "segclr_uda"}, data={**{k: v for k, v in cfg.data.__dict__.items()
                                                                     if k in ("dataset", "source_domain",
                                                                              "target_domains", "eval_domains",
                                                                              "input_height")},
                                                                  "spacing_aware": False})
    off = SegCLRDataModule(cfg_off)
    off.setup("fit")
    assert off.prep.target_spacing_um is None
    img = off._unlabeled["dev_b"][0].images
    assert img.shape[-2] == 32 and float(img[..., 24:].abs().sum()) == 0.0  # squeezed to 24 columns (the shift
    # this fixes), zero-padded to the 32-pixel training crop


def test_every_mode_shares_the_source_working_grid(bank, make_config):
    """The upper bound trains on native Cirrus labels but at the source's target spacing (not 2x squeezed)."""
    from segclr.data.datamodule import SegCLRDataModule

    sup = SegCLRDataModule(make_config(objective={"mode": "supervised"}), bank)
    ub = SegCLRDataModule(make_config(objective={"mode": "upper_bound"}), bank)
    sup.setup("fit")
    ub.setup("fit")
    assert ub.prep.target_spacing_um == sup.prep.target_spacing_um
    assert ub.prep.target_spacing_um == pytest.approx((3.87 * 496 / 64, 11.3 * 496 / 64))  # tiny: 64 rows
    h, w = ub._labeled[0].images.shape[-2:]
    t_row, t_col = ub.prep.target_spacing_um
    assert (h, w) == (round(1024 * 1.953 / t_row), round(512 * 11.72 / t_col))  # 2 mm x 6 mm at the source grid


def test_grids_narrower_than_the_crop_are_padded_not_refused(make_config, bank):
    """Height rule on native Cirrus (1024 x 512 -> 64 x 32 here) is narrower than the crop: padded with label 0."""
    from segclr.data.datamodule import SegCLRDataModule

    cfg = make_config(objective={"mode": "segclr_uda"}, data={"spacing_aware": False, "crop_size": 48})
    dm = SegCLRDataModule(cfg, bank)
    dm.setup("fit")
    tgt = dm._unlabeled["cirrus_like"][0]
    assert tuple(tgt.images.shape[-2:]) == (64, 48)  # 32 columns padded to the crop's 48
    assert float(tgt.images[..., 32:].abs().sum()) == 0.0
    batch = next(iter(dm.train_dataloader().iterables["cirrus_like"]))
    assert batch["view1"].shape[-2:] == (48, 48)
