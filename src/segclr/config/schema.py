"""The run configuration's schema: the allowed choices, the sections as dataclasses with their
defaults (and why), and :class:`RunConfig` with the views derived from them (which domains are
labeled, which feed the unlabeled streams). Loading and checking live in
:mod:`segclr.config.loading`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MODES = (
    "supervised", "upper_bound", "segclr_uda", "segclr_dg",          # the method's settings
    "multi_domain", "ssl_pretrain", "finetune", "dann", "entropy_min", "adabn",  # study baselines
    "svdna", "svdna_segclr_uda",                                     # SVDNA (Koch et al. 2022), alone and + SegCLR
)
CONTRASTIVE_MODES = ("segclr_uda", "segclr_dg", "multi_domain", "ssl_pretrain", "svdna_segclr_uda")
SVDNA_MODES = ("svdna", "svdna_segclr_uda")  # the labeled batch is restyled toward target B-scans
HEADS = ("ch", "pool")
PAIRS = ("a", "s", "s+a")
CONTRASTIVE_LOSSES = ("ntxent", "simsiam")
SUP_LOSSES = ("dice", "dice_ce")
NORMS = ("batch", "instance", "group")
STEMS = ("conv", "s2d", "s2d_refine")
BN_STATS = ("joint", "labeled")
GEOMETRIES = ("source", "native")
FLUID_CROP_BY = ("pixel", "component")  # how a fluid-centred training crop picks its centre
SCHEDULES = ("cosine", "poly", "constant")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass
class DataConfig:
    # Domain whose labels train the model (the paper's Ds). `upper_bound` swaps in the target.
    source_domain: str = "spectralis"
    # Unlabeled domains for the contrastive term in UDA (the paper's Dt).
    target_domains: list[str] = field(default_factory=lambda: ["cirrus_like"])
    # Domains scored after training (test patients of each).
    eval_domains: list[str] = field(default_factory=lambda: ["spectralis", "cirrus_like", "topcon_like"])
    # Working resolution: a B-scan is resized so that its height is this many rows, keeping the aspect
    # ratio (with spacing_aware, it sets the target spacing instead: the training data's median
    # spacing at this height). 496 = the native Duke Spectralis grid (3.87 x 11.3 um per pixel),
    # chosen on validation with 256-px crops (docs/quality.md 1e, 1f); grids committed before then
    # pin the earlier 248 (half resolution), which the demo keeps to fit its 15 minutes.
    input_height: int = 496
    # Simulated devices on their own pixel grid ("native": spacing, depth range, field of view) or
    # resampled back to the Spectralis grid ("source": appearance shift only).
    geometry: str = "native"
    # Resample every B-scan of known spacing to one target spacing (the nnU-Net way) instead of
    # to input_height rows; the model stores the target spacing.
    spacing_aware: bool = True
    # (row, column) um per pixel at the working resolution; [] = the training data's median
    # spacing at input_height rows (Duke: 3.87 x 11.3 um at 496 rows, 7.74 x 22.6 um at 248).
    target_spacing_um: list[float] = field(default_factory=list)
    # Square training crops, in working-resolution pixels. 256 at 496 rows covers what 128 covered
    # at 248 (a quarter of the B-scan's width); chosen with input_height (docs/quality.md 1e).
    crop_size: int = 256
    batch_size: int = 8           # labeled slices per step (and pairs per unlabeled domain)
    pairs: str = "a"              # a = Pa, s = Ps, s+a = Ps+a
    pair_distance: int = 2        # Ps partner within this many slices of the same volume
    simulation_seed: int = 0      # seed of the device simulator (fixed per benchmark)
    # Your own volumes instead of the embedded benchmark: a dataset YAML (see segclr.data.domains.load_dataset)
    dataset: str = ""
    # Pick the training crop's centre on a fluid pixel with this probability (labeled stream).
    # 0.8 was chosen on validation (patients 4-5, configs/experiments/quality_search2_cpu.yaml,
    # docs/quality.md); grids committed before then pin the earlier 0.5.
    fluid_crop_prob: float = 0.8
    # How a fluid-centred crop picks its centre: "pixel" = a fluid pixel of the slice, uniformly (large
    # pockets get most crops); "component" = a fluid component of the slice uniformly (8-connectivity),
    # then a pixel of it, so small pockets are centred as often as large ones. "component" was chosen
    # on cross-validated validation over training patients 1-5 (docs/quality.md 1k-1l); grids
    # committed before then, and the modes not yet checked with it, pin "pixel".
    fluid_crop_by: str = "component"
    # How many target-train patients (of 6-8) the target streams use; -1 = all. 0 removes the
    # target stream (UDA with no target data is then DG). The amount-of-target-data study.
    target_patients: int = -1
    # Source patients held out of training as a validation split (recipe and post-processing
    # choices are made on it, never on the test patients). [] = train on every source patient.
    val_patients: list[int] = field(default_factory=list)


@dataclass
class AugmentConfig:
    enabled: bool = True
    # False: the labeled batch trains un-augmented while contrastive views (Pa, Ps+a) still are
    # (the study's appearance-shift regime: invariance must come from the contrastive term).
    labeled: bool = True
    # Chance that a labeled crop gets synthetic burned-in overlays (text, glyphs, boxes, scale
    # bars, an inset image) drawn into its background, with label 0 (see segclr.data.overlays_aug).
    overlay_prob: float = 0.0
    gamma: tuple[float, float] = (0.6, 1.6)
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.1               # additive shift, +- this
    speckle_looks: tuple[float, float] = (1.0, 8.0)  # Gamma(L, 1/L) multiplicative noise
    speckle_prob: float = 0.8
    noise_std: tuple[float, float] = (0.0, 0.05)
    blur_sigma: tuple[float, float] = (0.0, 1.5)     # pixels
    blur_prob: float = 0.5
    scale: tuple[float, float] = (0.85, 1.15)
    rotate_deg: float = 8.0
    flip_prob: float = 0.5


@dataclass
class SVDNAConfig:
    """SVDNA restyling of labeled B-scans (modes svdna, svdna_segclr_uda; segclr.data.svdna).

    Our defaults, chosen for 128-pixel crops at half resolution (the studies' geometry): not the paper's
    values (unknown to us); at the full-resolution default's 256-pixel crops the same k passed a
    validation check against half resolution (docs/quality.md 1f).
    """

    prob: float = 0.5                    # chance that a labeled crop is restyled (per crop)
    # leading singular components kept from the source crop, drawn per crop from [lo, hi] (clipped to
    # the crop's rank); the target crop's components from k on replace the source's (its noise)
    k: tuple[int, int] = (16, 48)
    histogram: bool = True               # then give the restyled crop the target crop's histogram


@dataclass
class ModelConfig:
    num_classes: int = 2          # including background (Duke: background, fluid)
    base_channels: int = 8
    depth: int = 4                # number of 2x downsamplings; inputs must be divisible by 2**depth
    norm: str = "batch"
    dropout: float = 0.0
    # conv = full-resolution first stage; s2d = space-to-depth (2x2 blocks folded into channels,
    # the network starts at half resolution, logits unfolded back): the speed issue's cheaper stem;
    # s2d_refine = s2d plus one thin 3x3 layer at full resolution (docs/performance.md)
    stem: str = "conv"
    head: str = "ch"              # ch = Cch (channel aggregation), pool = Cpool (SimCLR)
    head_stage: int = -1          # encoder stage the head taps (-1 = bottleneck)
    head_channels: int = 1        # Cch: channels kept by the 1x1 reduction (the paper's k)
    head_hidden: int = 256
    embedding_dim: int = 128


@dataclass
class ObjectiveConfig:
    mode: str = "segclr_uda"
    contrastive_loss: str = "ntxent"
    temperature: float = 0.1
    lambda_sup: float = 20.0      # weight of the supervised term (the paper's lambda)
    # weight of the contrastive term; 0 is the study's control: target images still share the
    # encoder pass (and its BatchNorm statistics) but the contrastive loss trains nothing
    lambda_con: float = 1.0
    sup_loss: str = "dice_ce"
    # Dice over the whole batch per class (true) or per image, then averaged (false): per image
    # weighs a crop with a small fluid pocket as much as one with a large pocket.
    dice_batch: bool = True
    # Weight of the fluid classes in the cross-entropy of dice_ce (background 1): > 1 pushes recall
    # on small pockets; 1 = MONAI's DiceCELoss unchanged.
    ce_fluid_weight: float = 1.0
    # Weight of the blob Dice (after Kofler et al. 2023) added to the supervised loss: a soft Dice per
    # reference fluid component of the crop, so in that term a small pocket counts as much as a large one
    # (segclr.losses.blob; logged inside loss/sup). 0 = off. Not with deep_supervision.
    blob_weight: float = 0.0
    # nnU-Net's deep supervision: 1x1 heads on the decoder's coarser levels add their Dice(+CE) against
    # labels resampled to each level, weighted 1, 1/2, 1/4, ... from the finest (modes without a
    # contrastive or adversarial term; the heads are training only, the saved model is unchanged).
    deep_supervision: bool = False
    dann_weight: float = 0.1        # DANN: weight of the domain-classification loss
    entropy_weight: float = 0.01    # entropy_min: weight of the target prediction entropy
    init_from: str = ""             # finetune: model.safetensors whose UNet weights start training
    # BatchNorm and the unlabeled images: "joint" = one encoder pass over the labeled batch and every
    # unlabeled image of the step (BatchNorm statistics mix the domains: part of AdaBN for free);
    # "labeled" = the unlabeled images go through a separate pass that leaves the running statistics
    # alone, so the labeled path and the saved model see labeled-domain statistics only.
    bn_stats: str = "joint"


@dataclass
class TrainerConfig:
    max_steps: int = 1500
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # Learning-rate schedule after a linear warm-up of warmup_steps: cosine (to 5 % of lr), poly
    # (nnU-Net's (1 - t)^0.9) or constant.
    schedule: str = "cosine"
    warmup_steps: int = 0
    # Score the validation split (data.val_patients) every this many steps and log val/dice; 0 = never.
    val_every_n_steps: int = 0
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 250
    tensorboard: bool = False
    progress_bar: bool = True
    num_threads: int = 0          # torch intra-op threads on CPU; 0 = leave torch's default
    max_bad_steps: int = 10       # stop after this many consecutive steps with a NaN/Inf loss or input


@dataclass
class PostprocessConfig:
    # Applied to every predicted mask by predict/evaluate (stored in the model bundle; the CLI's
    # --no-postprocess turns it off). Fluid components smaller than this many pixels at the
    # working resolution are removed; 0 keeps all. Both defaults were chosen on the validation
    # split (benchmarks/postprocess_search.py, docs/quality.md 1e and 2). 80 px at 496 rows is about
    # 3,500 um^2, the area of the 20 px chosen earlier at 248 rows.
    min_component_px: int = 80
    # Remove fluid outside the retina (a tissue mask estimated from the image itself).
    retina_only: bool = True


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    svdna: SVDNAConfig = field(default_factory=SVDNAConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)

    # ----------------------------------------------------------------- derived views
    @property
    def uses_contrastive(self) -> bool:
        return self.objective.mode in CONTRASTIVE_MODES

    @property
    def labeled_sets(self) -> list[tuple[str, str]]:
        """(domain, split role) pairs whose labels train the model."""
        mode, src = self.objective.mode, self.data.source_domain
        if mode == "ssl_pretrain":
            return []
        if mode == "upper_bound":
            # A ceiling must not have fewer labels than the baseline: on the embedded benchmark the
            # target device is a rendering, so it trains on source patients 1-5 rendered as that
            # device (never the test patients). A dataset file's target domain has its own roles.
            return [(self.data.target_domains[0], "target_train" if self.data.dataset else "source_train")]
        if mode == "multi_domain":
            return [(src, "source_train"), (self.data.target_domains[0], "target_train")]
        return [(src, "source_train")]

    @property
    def labeled_domain(self) -> str:
        """The (first) domain whose labels train the model."""
        sets = self.labeled_sets
        return sets[0][0] if sets else ""

    @property
    def unlabeled_domains(self) -> list[str]:
        """Domains that feed the unlabeled streams (contrastive pairs, or target images for DA)."""
        mode, src = self.objective.mode, self.data.source_domain
        targets = list(self.data.target_domains) if self.data.target_patients != 0 else []
        if mode in ("segclr_uda", "multi_domain", "ssl_pretrain", "svdna_segclr_uda"):
            return [src, *targets]
        if mode == "segclr_dg":
            return [src]
        if mode in ("dann", "entropy_min", "adabn", "svdna"):  # svdna: the B-scans it restyles toward
            return targets
        return []

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
