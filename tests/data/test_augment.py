"""Tests of segclr.data.augment.BatchAugment (batched per-sample augmentation)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from segclr.config import AugmentConfig
from segclr.data.augment import BatchAugment

# A configuration with every range degenerate: each stage is the identity.
IDENTITY = AugmentConfig(
    gamma=(1.0, 1.0), contrast=(1.0, 1.0), brightness=0.0, speckle_prob=0.0,
    noise_std=(0.0, 0.0), blur_sigma=(0.0, 0.0), blur_prob=0.0,
    scale=(1.0, 1.0), rotate_deg=0.0, flip_prob=0.0,
)

GEOMETRY_ONLY = dataclasses.replace(IDENTITY, scale=(0.8, 1.2), rotate_deg=15.0, flip_prob=0.5)


def only(**changes) -> BatchAugment:
    return BatchAugment(dataclasses.replace(IDENTITY, **changes))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_batch(b: int = 8, h: int = 64, w: int = 64, seed: int = 0):
    g = gen(seed)
    images = torch.rand(b, 1, h, w, generator=g)
    masks = torch.randint(0, 4, (b, h, w), generator=g)
    return images, masks


def rectangle_batch(b: int = 16, h: int = 64, w: int = 64):
    """An off-centre bright rectangle (so a flip or shift would be visible), mask = same rectangle."""
    images = torch.zeros(b, 1, h, w)
    masks = torch.zeros(b, h, w, dtype=torch.long)
    images[:, :, 12:34, 8:28] = 1.0
    masks[:, 12:34, 8:28] = 3
    return images, masks


# --------------------------------------------------------------------------- basics
def test_shapes_dtypes_and_range_default_config():
    images, masks = random_batch()
    out, out_masks = BatchAugment(AugmentConfig())(images, masks, generator=gen())
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out_masks.shape == masks.shape and out_masks.dtype == torch.long
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_masks_none_returns_none():
    images, _ = random_batch()
    out, out_masks = BatchAugment(AugmentConfig())(images)
    assert out_masks is None and out.shape == images.shape


def test_masks_keep_only_input_values():
    images, masks = random_batch()
    masks = masks * 2 + 1  # values {1, 3, 5, 7}; out-of-field pixels become 0
    _, out_masks = BatchAugment(AugmentConfig())(images, masks, generator=gen())
    assert out_masks.dtype == torch.long
    assert set(out_masks.unique().tolist()) <= {0, 1, 3, 5, 7}


def test_non_square_images():
    images, masks = random_batch(b=4, h=48, w=96)
    out, out_masks = BatchAugment(AugmentConfig())(images, masks, generator=gen())
    assert out.shape == (4, 1, 48, 96) and out_masks.shape == (4, 48, 96)


def test_bad_shapes_rejected():
    aug = BatchAugment(AugmentConfig())
    # `match=` matters: without the shape check, unpacking a 3-D shape raises a ValueError too
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\), got shape \(1, 32, 32\)"):
        aug(torch.rand(1, 32, 32))
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\), got shape \(1, 1, 1, 32, 32\)"):
        aug(torch.rand(1, 1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"masks must be \(B, H, W\) = \(2, 32, 32\), got \(2, 32, 31\)"):
        aug(torch.rand(2, 1, 32, 32), torch.zeros(2, 32, 31, dtype=torch.long))
    with pytest.raises(ValueError, match="masks must be an integer tensor"):
        aug(torch.rand(2, 1, 32, 32), torch.zeros(2, 32, 32))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"gamma": (0.0, 1.0)}, r"^augment\.gamma must be > 0"),
        ({"scale": (0.0, 1.0)}, r"^augment\.scale must be > 0"),
        ({"speckle_looks": (0.0, 2.0)}, r"^augment\.speckle_looks must be > 0"),
        ({"blur_sigma": (-0.1, 1.0)}, r"^augment\.blur_sigma and augment\.noise_std must be >= 0"),
        ({"noise_std": (-0.1, 0.0)}, r"^augment\.blur_sigma and augment\.noise_std must be >= 0"),
    ],
)
def test_bad_ranges_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        BatchAugment(dataclasses.replace(AugmentConfig(), **changes))


def test_edge_ranges_accepted():
    # zero speckle looks are fine when speckle is off; zero blur and noise are allowed
    BatchAugment(dataclasses.replace(AugmentConfig(), speckle_prob=0.0, speckle_looks=(0.0, 0.0)))
    BatchAugment(dataclasses.replace(AugmentConfig(), blur_sigma=(0.0, 0.0), noise_std=(0.0, 0.0)))


def test_empty_batch_passes_through():
    images = torch.rand(0, 1, 16, 16)
    masks = torch.zeros(0, 16, 16, dtype=torch.long)
    out, out_masks = BatchAugment(AugmentConfig())(images, masks)
    assert out.shape == (0, 1, 16, 16) and out_masks.shape == (0, 16, 16)


# --------------------------------------------------------------------------- identity
def test_disabled_is_identity():
    images, masks = random_batch()
    out, out_masks = BatchAugment(AugmentConfig(enabled=False))(images, masks)
    assert out is images and out_masks is masks


def test_degenerate_ranges_are_identity():
    images, masks = random_batch()
    out, out_masks = BatchAugment(IDENTITY)(images, masks, generator=gen())
    torch.testing.assert_close(out, images, rtol=0, atol=0)
    assert torch.equal(out_masks, masks)


# --------------------------------------------------------------------------- geometry
def test_flip_only_mirrors_image_and_mask():
    images, masks = random_batch()
    out, out_masks = only(flip_prob=1.0)(images, masks, generator=gen())
    torch.testing.assert_close(out, images.flip(-1), rtol=0, atol=1e-5)
    assert torch.equal(out_masks, masks.flip(-1))


def test_geometry_keeps_image_and_mask_aligned():
    images, masks = rectangle_batch()
    out, out_masks = BatchAugment(GEOMETRY_ONLY)(images, masks, generator=gen(1))
    inside = out_masks == 3
    bright = out[:, 0] > 0.5
    # The transform did something (otherwise alignment would be trivial) ...
    assert (inside != (masks == 3)).any(dim=(1, 2)).float().mean() > 0.8
    # ... and bright pixels coincide with the mask up to a few boundary pixels per sample.
    for i in range(len(out)):
        inter = (inside[i] & bright[i]).sum().item()
        union = (inside[i] | bright[i]).sum().item()
        assert inter / union > 0.93, (i, inter, union)
    # Nothing bright falls far outside the mask: dilating the mask by 1 pixel covers it.
    dilated = torch.nn.functional.max_pool2d(inside[:, None].float(), 3, 1, 1)[:, 0] > 0
    assert not (bright & ~dilated).any()


def test_scale_zooms_about_the_centre():
    images = torch.zeros(2, 1, 64, 64)
    images[:, :, 24:40, 24:40] = 1.0  # centred 16 x 16 square
    out, _ = only(scale=(1.25, 1.25))(images, generator=gen())
    area = (out[:, 0] > 0.5).sum(dim=(1, 2)).float()
    torch.testing.assert_close(area, torch.full((2,), 16 * 16 * 1.25**2), rtol=0.1, atol=0)


def test_rotation_is_rigid_on_non_square_images():
    # A disc in a wide image stays a disc (isotropic second moments) after rotation.
    h, w, r = 64, 160, 20
    yy, xx = torch.meshgrid(torch.arange(h) - h / 2 + 0.5, torch.arange(w) - w / 2 + 0.5, indexing="ij")
    disc = ((yy**2 + xx**2) <= r**2).float()
    images = disc.expand(8, 1, h, w).clone()
    out, _ = only(rotate_deg=30.0)(images, generator=gen())
    wgt = out[:, 0]
    mass = wgt.sum(dim=(1, 2))
    var_x = (wgt * xx**2).sum(dim=(1, 2)) / mass
    var_y = (wgt * yy**2).sum(dim=(1, 2)) / mass
    torch.testing.assert_close(var_x / var_y, torch.ones(8), rtol=0.03, atol=0)
    torch.testing.assert_close(mass, disc.sum().expand(8), rtol=0.02, atol=0)


# --------------------------------------------------------------------------- randomness
def test_two_calls_give_different_views():
    images, masks = random_batch()
    aug = BatchAugment(AugmentConfig())
    a, _ = aug(images, masks)
    b, _ = aug(images, masks)
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every sample differs


def test_parameters_differ_within_a_batch():
    # Identical samples in one batch must come out different (per-sample draws).
    images, masks = rectangle_batch(b=8)
    images = images * 0.6 + 0.2
    out, out_masks = BatchAugment(AugmentConfig())(images, masks, generator=gen())
    for i in range(1, 8):
        assert not torch.allclose(out[0], out[i], atol=1e-3)
    # The geometry differs between samples too (seen through the masks; nearest sampling
    # can map two close draws onto the same mask, hence not all 8).
    assert len({tuple(m.flatten().tolist()) for m in out_masks}) >= 6


def test_photometric_parameters_differ_within_a_batch():
    images = torch.full((16, 1, 32, 32), 0.5)
    out, _ = only(brightness=0.2)(images, generator=gen())
    shifts = out.mean(dim=(1, 2, 3)) - 0.5
    assert shifts.abs().max() <= 0.2 + 1e-6
    assert shifts.unique().numel() == 16 and shifts.std() > 0.05


def test_seeded_generator_is_deterministic():
    images, masks = random_batch()
    aug = BatchAugment(AugmentConfig())
    a, ma = aug(images, masks, generator=gen(123))
    b, mb = aug(images, masks, generator=gen(123))
    c, _ = aug(images, masks, generator=gen(124))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.allclose(a, c)


def test_generator_state_advances_between_calls():
    images, _ = random_batch()
    aug = BatchAugment(AugmentConfig())
    g = gen(5)
    a, _ = aug(images, generator=g)
    b, _ = aug(images, generator=g)
    assert not torch.allclose(a, b)


# --------------------------------------------------------------------------- photometric
def test_speckle_keeps_the_mean():
    level = 0.2  # low enough that clamping at 1 barely matters (P[Gamma(1,1) > 5] = e^-5)
    images = torch.full((32, 1, 128, 128), level)
    out, _ = only(speckle_prob=1.0, speckle_looks=(1.0, 8.0))(images, generator=gen())
    means = out.mean(dim=(1, 2, 3))
    torch.testing.assert_close(means, torch.full_like(means, level), rtol=0.05, atol=0)
    # Gamma(L, 1/L) has variance 1/L: relative variance within [1/8, 1] (up to sampling error).
    rel_var = out.var(dim=(1, 2, 3)) / level**2
    assert rel_var.min() > 1 / 8 * 0.85 and rel_var.max() < 1.1
    assert rel_var.max() / rel_var.min() > 2  # looks differ between samples


def test_speckle_probability_zero_and_one():
    images = torch.full((16, 1, 32, 32), 0.3)
    out, _ = only(speckle_prob=1.0)(images, generator=gen())
    assert (out.std(dim=(1, 2, 3)) > 0.02).all()
    out, _ = only(speckle_prob=1e-9)(images, generator=gen())
    assert torch.equal(out, images)


def test_gamma_contrast_brightness_formulas():
    images, _ = random_batch(b=4)
    out, _ = only(gamma=(2.0, 2.0))(images, generator=gen())
    torch.testing.assert_close(out, images**2)
    out, _ = only(contrast=(0.5, 0.5))(images, generator=gen())
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, (images - mean) * 0.5 + mean)


def test_gamma_is_log_uniform_within_range():
    images = torch.full((256, 1, 4, 4), 0.5)
    out, _ = only(gamma=(0.5, 2.0))(images, generator=gen())
    gammas = torch.log(out[:, 0, 0, 0]) / math.log(0.5)
    assert gammas.min() >= 0.5 - 1e-4 and gammas.max() <= 2.0 + 1e-4
    # log-uniform: about half the draws below 1 (the geometric mid-point).
    assert 0.35 < (gammas < 1.0).float().mean() < 0.65


def test_additive_noise_std():
    images = torch.full((8, 1, 128, 128), 0.5)
    out, _ = only(noise_std=(0.05, 0.05))(images, generator=gen())
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), torch.full((8,), 0.05), rtol=0.05, atol=0)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.full((8,), 0.5), rtol=0, atol=0.005)


def test_blur_is_a_normalised_gaussian_of_the_drawn_width():
    h = w = 33
    images = torch.zeros(2, 1, h, w)
    images[:, :, 16, 16] = 1.0
    out, _ = only(blur_prob=1.0, blur_sigma=(1.5, 1.5))(images, generator=gen())
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(2))
    coords = torch.arange(w, dtype=torch.float32) - 16
    var_x = (out[:, 0] * coords.view(1, 1, -1) ** 2).sum(dim=(1, 2))
    var_y = (out[:, 0] * coords.view(1, -1, 1) ** 2).sum(dim=(1, 2))
    # A sampled Gaussian truncated at 3 sigma: variance slightly below sigma^2.
    torch.testing.assert_close(var_x, torch.full((2,), 1.5**2), rtol=0.05, atol=0)
    torch.testing.assert_close(var_y, var_x)
    # A constant image stays constant (replicate padding, normalised kernel).
    flat, _ = only(blur_prob=1.0)(torch.full((2, 1, 16, 16), 0.4), generator=gen())
    torch.testing.assert_close(flat, torch.full_like(flat, 0.4))


def test_blur_sigma_is_per_sample():
    images = torch.zeros(64, 1, 33, 33)
    images[:, :, 16, 16] = 1.0
    out, _ = only(blur_prob=0.5, blur_sigma=(0.0, 1.5))(images, generator=gen())
    peaks = out[:, 0, 16, 16]
    assert peaks.unique().numel() > 4  # several different widths, some samples untouched
    assert (peaks == 1.0).any() and (peaks < 0.5).any()


# --------------------------------------------------------------------------- scale / devices
def test_training_sized_batch():
    images = torch.rand(64, 1, 128, 128, generator=gen())
    masks = torch.randint(0, 2, (64, 128, 128), generator=gen())
    out, out_masks = BatchAugment(AugmentConfig())(images, masks, generator=gen())
    assert out.shape == (64, 1, 128, 128) and out_masks.shape == (64, 128, 128)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_with_cpu_and_cuda_generators():
    images, masks = random_batch()
    images, masks = images.cuda(), masks.cuda()
    aug = BatchAugment(AugmentConfig())
    a, ma = aug(images, masks, generator=gen(7))  # CPU generator, CUDA data
    b, mb = aug(images, masks, generator=gen(7))
    assert a.is_cuda and ma.is_cuda
    assert torch.equal(a, b) and torch.equal(ma, mb)
    cg = torch.Generator(device="cuda").manual_seed(7)
    c, _ = aug(images, masks, generator=cg)
    assert c.is_cuda and c.min() >= 0 and c.max() <= 1
    d, _ = aug(images, masks)
    assert d.is_cuda


# --------------------------------------------------------------------------- found by mutation testing
def test_default_config_and_repr():
    aug = BatchAugment()
    assert aug.cfg == AugmentConfig()
    assert repr(AugmentConfig()) in repr(aug)


def test_ranges_touching_the_identity_at_one_end_still_apply():
    images = torch.full((32, 1, 8, 8), 0.5)
    images[:, :, :4] = 0.2
    for changes in ({"gamma": (1.0, 2.0)}, {"gamma": (0.5, 1.0)}, {"contrast": (1.0, 2.0)},
                    {"contrast": (0.5, 1.0)}, {"brightness": 1.0}):
        out, _ = only(**changes)(images, generator=gen())
        assert (out - images).abs().amax(dim=(1, 2, 3)).max() > 0.05, changes


def test_output_keeps_the_input_dtype():
    images, masks = random_batch(b=2)
    for dtype in (torch.float64, torch.float16):
        out, _ = BatchAugment(AugmentConfig())(images.to(dtype), masks, generator=gen())
        assert out.dtype == dtype


def test_narrow_blur_is_applied():
    images = torch.zeros(2, 1, 17, 17)
    images[:, :, 8, 8] = 1.0
    out, _ = only(blur_prob=1.0, blur_sigma=(0.8, 0.8))(images, generator=gen())
    assert (out[:, 0, 8, 8] < 0.5).all()
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(2))


def test_blur_kernel_is_truncated_at_three_sigma():
    sigma = 1.5
    radius = 5  # ceil(3 * sigma)
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    var = float((w * k**2).sum() / w.sum())
    images = torch.zeros(1, 1, 33, 33)
    images[:, :, 16, 16] = 1.0
    out, _ = only(blur_prob=1.0, blur_sigma=(sigma, sigma))(images, generator=gen())
    coords = torch.arange(33, dtype=torch.float64) - 16
    assert float((out[0, 0].double() * coords.view(1, -1) ** 2).sum()) == pytest.approx(var, rel=1e-4)
    assert (out[0, 0, 16, 16 + radius + 1:] == 0).all() and out[0, 0, 16, 16 + radius] > 0


def test_blur_keeps_a_constant_image_constant_at_the_borders():
    flat = torch.full((3, 1, 12, 20), 0.4)
    out, _ = only(blur_prob=1.0, blur_sigma=(1.5, 1.5))(flat, generator=gen())
    torch.testing.assert_close(out, flat)


def test_blur_treats_channels_separately_with_one_width_per_sample():
    images = torch.rand(4, 2, 16, 16, generator=gen(9))
    aug = only(blur_prob=1.0, blur_sigma=(0.3, 1.5))
    both, _ = aug(images, generator=gen(3))
    first, _ = aug(images[:, :1], generator=gen(3))
    second, _ = aug(images[:, 1:], generator=gen(3))
    torch.testing.assert_close(both, torch.cat([first, second], dim=1))


def _bar_angles(out: torch.Tensor) -> torch.Tensor:
    """Orientation (degrees) of the principal axis of each image's brightness."""
    h, w = out.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
    m = out[:, 0]
    mass = m.sum(dim=(1, 2))
    cx, cy = (m * xx).sum(dim=(1, 2)) / mass, (m * yy).sum(dim=(1, 2)) / mass
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    sxx, syy, sxy = ((m * dx * dx).sum(dim=(1, 2)), (m * dy * dy).sum(dim=(1, 2)), (m * dx * dy).sum(dim=(1, 2)))
    return torch.rad2deg(0.5 * torch.atan2(2 * sxy, sxx - syy))


def test_rotation_angles_stay_within_the_range_both_ways():
    images = torch.zeros(64, 1, 64, 64)
    images[:, :, 30:34, 8:56] = 1.0  # a horizontal bar
    out, _ = only(rotate_deg=20.0)(images, generator=gen())
    angles = _bar_angles(out)
    assert angles.abs().max() <= 20.5
    assert angles.min() < -12 and angles.max() > 12   # both directions, most of the range
    assert (angles.abs() < 5).any()


def test_gamma_clamps_before_the_contrast_stage():
    # noise pushes pixels above 1; gamma works on [0, 1], so after contrast 0.5 around a mean
    # below 1 no pixel can reach 1 again
    images = torch.full((4, 1, 32, 32), 0.7)
    aug = only(noise_std=(0.4, 0.4), gamma=(2.0, 2.0), contrast=(0.5, 0.5))
    out, _ = aug(images, generator=gen())
    assert out.max() < 0.99
    y_max = out.amax(dim=(1, 2, 3))
    assert ((out == y_max[:, None, None, None]).sum(dim=(1, 2, 3)) > 20).all()  # all saturated pixels tie


def test_rotation_with_scale_is_a_similarity():
    # rotation and zoom together keep a disc a disc (no shear from the scale in the rotation
    # terms) and scale its area by scale**2
    h, w, r = 64, 160, 16
    yy, xx = torch.meshgrid(torch.arange(h) - h / 2 + 0.5, torch.arange(w) - w / 2 + 0.5, indexing="ij")
    disc = ((yy**2 + xx**2) <= r**2).float()
    out, _ = only(rotate_deg=30.0, scale=(1.3, 1.3))(disc.expand(16, 1, h, w).clone(), generator=gen(2))
    wgt = out[:, 0]
    mass = wgt.sum(dim=(1, 2))
    var_x = (wgt * xx**2).sum(dim=(1, 2)) / mass
    var_y = (wgt * yy**2).sum(dim=(1, 2)) / mass
    torch.testing.assert_close(var_x / var_y, torch.ones(16), rtol=0.03, atol=0)
    torch.testing.assert_close(mass, disc.sum().expand(16) * 1.3**2, rtol=0.03, atol=0)


def _with_draws(aug: BatchAugment, **columns: float) -> BatchAugment:
    """Fix the per-sample uniform draws: every column 0.5, the named ones (e.g. ``_ROT=1.0``) as given."""
    from segclr.data import augment as module

    def draw(batch, device, generator):
        u = torch.full((batch, module._NPARAMS), 0.5, device=device)
        for name, value in columns.items():
            u[:, getattr(module, name)] = value
        return u

    aug._draw_params = draw
    return aug


def test_rotation_angle_is_in_degrees_a_full_draw_turns_a_quarter():
    # rotate_deg=90 and the top draw: exactly a quarter turn, which maps the pixel grid onto itself
    images, masks = random_batch(b=2, h=48, w=48)
    out, out_masks = _with_draws(only(rotate_deg=90.0), _ROT=1.0)(images, masks)
    turned, turned_masks = torch.rot90(images, 1, dims=(-2, -1)), torch.rot90(masks, 1, dims=(-2, -1))
    torch.testing.assert_close(out, turned, rtol=0, atol=1e-4)
    assert torch.equal(out_masks, turned_masks)
    out, out_masks = _with_draws(only(rotate_deg=90.0), _ROT=0.0)(images, masks)  # the bottom draw: -90
    torch.testing.assert_close(out, torch.rot90(images, -1, dims=(-2, -1)), rtol=0, atol=1e-4)
    assert torch.equal(out_masks, torch.rot90(masks, -1, dims=(-2, -1)))


def test_mask_is_sampled_at_the_same_points_as_the_image():
    # image = column index / w (a ramp): bilinear sampling returns the source column itself, so the
    # nearest-neighbour mask of column indices must be that column rounded, at every pixel
    h, w = 40, 64
    cols = torch.arange(w).expand(2, h, w)
    images = (cols.float() / w)[:, None].clone()
    out, out_masks = only(scale=(1.37, 1.37))(images, cols.clone(), generator=gen())
    source = out[:, 0] * w
    assert ((source - source.floor()) - 0.5).abs().min() > 1e-3  # no ties: rounding is unambiguous
    assert torch.equal(out_masks, source.round().long())
    assert out_masks.min() > 0 and out_masks.max() < w - 1  # a zoom: every pixel comes from inside
