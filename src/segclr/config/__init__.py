"""Typed run configuration, loaded from YAML and overridden from the command line.

One :class:`RunConfig` describes a whole training run. YAML files in ``configs/`` set
the fields that differ from the defaults in :mod:`segclr.config.schema`; ``--set section.key=value``
overrides any field (the value is parsed as YAML, so ``--set trainer.max_steps=200`` gives an int
and ``--set data.target_domains=[cirrus_like]`` a list).

Unknown keys and wrong types raise :class:`ConfigError` naming the key, never a stack
trace from deep inside training (:mod:`segclr.config.loading`).
"""

from segclr.config.history import ADDED_KEYS, RUN_ONLY_KEYS, fill_added
from segclr.config.loading import (_coerce, _update, all_keys, apply_overrides, dump_config, from_dict, load_config,
                                   parse_override, validate)
from segclr.config.schema import (BN_STATS, CONTRASTIVE_LOSSES, CONTRASTIVE_MODES, FLUID_CROP_BY, GEOMETRIES, HEADS,
                                  MODES, NORMS, PAIRS, SCHEDULES, STEMS, SUP_LOSSES, SVDNA_MODES, AugmentConfig,
                                  ConfigError, DataConfig, ModelConfig, ObjectiveConfig, PostprocessConfig, RunConfig,
                                  SVDNAConfig, TrainerConfig)

__all__ = [
    "ADDED_KEYS", "BN_STATS", "CONTRASTIVE_LOSSES", "CONTRASTIVE_MODES", "FLUID_CROP_BY", "GEOMETRIES", "HEADS",
    "MODES", "NORMS", "PAIRS", "RUN_ONLY_KEYS", "SCHEDULES", "STEMS", "SUP_LOSSES", "SVDNA_MODES", "AugmentConfig",
    "ConfigError", "DataConfig", "ModelConfig", "ObjectiveConfig", "PostprocessConfig", "RunConfig", "SVDNAConfig",
    "TrainerConfig", "_coerce", "_update", "all_keys", "apply_overrides", "dump_config", "fill_added", "from_dict",
    "load_config", "parse_override", "validate",
]
