"""Typed run configuration, loaded from YAML and overridden from the command line.

One :class:`RunConfig` describes a whole training run. YAML files in ``configs/`` set
the fields that differ from the defaults below; ``--set section.key=value`` overrides
any field (the value is parsed as YAML, so ``--set trainer.max_steps=200`` gives an int
and ``--set data.target_domains=[cirrus_like]`` a list).

Unknown keys and wrong types raise :class:`ConfigError` naming the key, never a stack
trace from deep inside training.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
BN_STATS = ("joint", "labeled")
GEOMETRIES = ("source", "native")
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
    # Working resolution when a B-scan's pixel spacing is unknown: resized so that its height is
    # this many rows (Duke Spectralis 496 rows -> 248, i.e. half resolution), keeping the aspect ratio.
    input_height: int = 248
    # Simulated devices on their own pixel grid ("native": spacing, depth range, field of view) or
    # resampled back to the Spectralis grid ("source": appearance shift only).
    geometry: str = "native"
    # Resample every B-scan of known spacing to one target spacing (the nnU-Net way) instead of
    # to input_height rows; the model stores the target spacing.
    spacing_aware: bool = True
    # (row, column) um per pixel at the working resolution; [] = the training data's median
    # spacing at input_height rows (Duke: 7.74 x 22.6 um).
    target_spacing_um: list[float] = field(default_factory=list)
    crop_size: int = 128          # square training crops, in working-resolution pixels
    batch_size: int = 8           # labeled slices per step (and pairs per unlabeled domain)
    pairs: str = "a"              # a = Pa, s = Ps, s+a = Ps+a
    pair_distance: int = 2        # Ps partner within this many slices of the same volume
    simulation_seed: int = 0      # seed of the device simulator (fixed per benchmark)
    # Your own volumes instead of the embedded benchmark: a dataset YAML (see segclr.data.domains.load_dataset)
    dataset: str = ""
    # Pick the training crop's centre on a fluid pixel with this probability (labeled stream).
    fluid_crop_prob: float = 0.5
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

    Our defaults, chosen for 128-pixel crops at half resolution: not the paper's values (unknown to us).
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
    # split (benchmarks/postprocess_search.py, docs/quality.md).
    min_component_px: int = 20
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


# --------------------------------------------------------------------------- loading
def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field annotation, converting lists to tuples where declared."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if annotation in (int, bool, str):
        ok = isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"config key '{key}': expected {annotation.__name__}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{key}': expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': value {value!r} has the wrong type")
    raise ConfigError(f"config key '{key}': unsupported annotation {annotation!r}")


def _update(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key '{full}'{_did_you_mean(key, names, prefix)}"
                              f" (known in '{prefix.rstrip('.') or '<root>'}': {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _update(current, value, prefix=f"{full}.")
        else:
            setattr(obj, key, _coerce(full, value, hints[key]))


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}': {value!r} is not one of {', '.join(choices)}")


def validate(cfg: RunConfig) -> RunConfig:
    """Check values that types alone cannot; returns ``cfg`` for chaining."""
    _check_choice("objective.mode", cfg.objective.mode, MODES)
    _check_choice("objective.contrastive_loss", cfg.objective.contrastive_loss, CONTRASTIVE_LOSSES)
    _check_choice("objective.sup_loss", cfg.objective.sup_loss, SUP_LOSSES)
    _check_choice("model.head", cfg.model.head, HEADS)
    _check_choice("model.norm", cfg.model.norm, NORMS)
    _check_choice("data.pairs", cfg.data.pairs, PAIRS)
    _check_choice("objective.bn_stats", cfg.objective.bn_stats, BN_STATS)
    _check_choice("data.geometry", cfg.data.geometry, GEOMETRIES)
    _check_choice("trainer.schedule", cfg.trainer.schedule, SCHEDULES)
    for key, value in (("trainer.warmup_steps", cfg.trainer.warmup_steps),
                       ("trainer.val_every_n_steps", cfg.trainer.val_every_n_steps),
                       ("postprocess.min_component_px", cfg.postprocess.min_component_px)):
        if value < 0:
            raise ConfigError(f"config key '{key}': must be >= 0, got {value}")
    if 0 < cfg.trainer.max_steps <= cfg.trainer.warmup_steps:
        raise ConfigError(f"config key 'trainer.warmup_steps': {cfg.trainer.warmup_steps} must be below "
                          f"trainer.max_steps ({cfg.trainer.max_steps})")
    if not 0.0 <= cfg.augment.overlay_prob <= 1.0:
        raise ConfigError(f"config key 'augment.overlay_prob': must lie in [0, 1], got {cfg.augment.overlay_prob}")
    if cfg.trainer.val_every_n_steps and not cfg.data.val_patients:
        raise ConfigError("config key 'trainer.val_every_n_steps': needs a validation split (data.val_patients)")
    t = cfg.data.target_spacing_um
    if t and (len(t) != 2 or not all(0 < v <= 1000 for v in t)):
        raise ConfigError(f"config key 'data.target_spacing_um': [] or two spacings in um (0 < s <= 1000), got {t}")
    multiple = 2 ** cfg.model.depth
    if cfg.data.crop_size % multiple:
        raise ConfigError(
            f"config key 'data.crop_size': {cfg.data.crop_size} is not divisible by 2**model.depth = {multiple}"
        )
    for key, value in (
        ("data.batch_size", cfg.data.batch_size),
        ("trainer.max_steps", cfg.trainer.max_steps),
        ("model.base_channels", cfg.model.base_channels),
        ("model.depth", cfg.model.depth),
        ("data.input_height", cfg.data.input_height),
    ):
        if value < 1:
            raise ConfigError(f"config key '{key}': must be >= 1, got {value}")
    if cfg.objective.lambda_con < 0:
        raise ConfigError(f"config key 'objective.lambda_con': must be >= 0, got {cfg.objective.lambda_con}")
    if cfg.objective.temperature <= 0:
        raise ConfigError(f"config key 'objective.temperature': must be > 0, got {cfg.objective.temperature}")
    needs_target = ("segclr_uda", "upper_bound", "multi_domain", "dann", "entropy_min", "adabn", *SVDNA_MODES)
    if cfg.objective.mode in ("dann", "entropy_min", "adabn", *SVDNA_MODES) and cfg.data.target_patients == 0:
        raise ConfigError(f"config key 'data.target_patients': mode {cfg.objective.mode} needs target images")
    k_lo, k_hi = cfg.svdna.k
    if not 0 <= k_lo <= k_hi:
        raise ConfigError(f"config key 'svdna.k': needs 0 <= lo <= hi, got {list(cfg.svdna.k)}")
    if not 0.0 <= cfg.svdna.prob <= 1.0:
        raise ConfigError(f"config key 'svdna.prob': must lie in [0, 1], got {cfg.svdna.prob}")
    if cfg.objective.mode == "finetune" and not cfg.objective.init_from:
        raise ConfigError("config key 'objective.init_from': mode finetune needs a pretrained model.safetensors")
    if cfg.data.target_patients < -1:
        raise ConfigError(f"config key 'data.target_patients': must be -1 (all) or >= 0, got {cfg.data.target_patients}")
    if cfg.objective.mode in needs_target and not cfg.data.target_domains:
        raise ConfigError(f"config key 'data.target_domains': mode {cfg.objective.mode} needs a target domain")
    if cfg.uses_contrastive and cfg.objective.contrastive_loss == "ntxent" and cfg.data.batch_size < 2:
        raise ConfigError("config key 'data.batch_size': NT-Xent needs at least 2 pairs per batch for negatives")
    return cfg


def _did_you_mean(key: str, names, prefix: str = "") -> str:
    """`` (did you mean 'trainer.max_steps'?)`` for the closest known name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.6)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""


def all_keys() -> list[str]:
    """Every ``section.key`` of a :class:`RunConfig`."""
    cfg = RunConfig()
    return [f"{f.name}.{g.name}" for f in dataclasses.fields(cfg) for g in dataclasses.fields(getattr(cfg, f.name))]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.max_steps=200"`` -> (["trainer", "max_steps"], 200)."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected section.key=value with '=' and no spaces, "
                          f"e.g. --set {text.strip() or 'trainer.max_steps'}=VALUE")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) != 2:
        full = [k for k in all_keys() if k.split(".")[1] == key.strip()]
        hint = f"; did you mean --set {full[0]}={raw}?" if len(full) == 1 else ""
        raise ConfigError(f"--set {text}: key {key!r} must be section.key (e.g. trainer.max_steps){hint}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text}: value is not valid YAML ({err})") from None
    return path, value


def apply_overrides(cfg: RunConfig, overrides: list[str] = ()) -> RunConfig:
    """Apply command-line ``section.key=value`` overrides; errors name the ``--set`` that caused them."""
    for text in overrides:
        (section, key), value = parse_override(text)
        try:
            _update(cfg, {section: {key: value}})
        except ConfigError as err:
            raise ConfigError(f"--set {text} (command line): {err}") from None
    return cfg


def from_dict(values: dict[str, Any] | None, overrides: list[str] = ()) -> RunConfig:
    cfg = RunConfig()
    _update(cfg, values or {})
    apply_overrides(cfg, overrides)
    return validate(cfg)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
    cfg = RunConfig()
    try:
        _update(cfg, values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    apply_overrides(cfg, overrides)  # its errors blame the command line, not the file
    try:
        return validate(cfg)
    except ConfigError as err:
        if path is None and not overrides:
            raise
        where = " with ".join(x for x in (str(path) if path is not None else "", "--set values" if overrides else "") if x)
        raise ConfigError(f"{where}: {err}") from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
