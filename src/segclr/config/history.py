"""Config keys added after runs and cells were saved, with the value that reproduces the old behaviour.

A ``config.yaml`` written by ``fit`` holds every key of its time. A key it lacks did not exist
when the run trained, so the run behaved as that key's *neutral* value, not as today's default:
``data.fluid_crop_by`` was added at ``pixel`` and its default later became ``component``. Filling a
saved config from :data:`ADDED_KEYS` keeps a resumed run (``fit --resume``) and a committed
experiment cell training and scoring as they did.

A key added to the schema gets an entry here when its default differs from the behaviour before
it existed (``tests/experiment/test_mut_runner.py`` checks every committed cell against this).
"""

from __future__ import annotations

import copy
from typing import Any

ADDED_KEYS: dict[str, dict[str, Any]] = {
    "data": {"val_patients": [], "fluid_crop_by": "pixel"},
    "augment": {"overlay_prob": 0.0},
    "objective": {"dice_batch": True, "ce_fluid_weight": 1.0, "deep_supervision": False,
                  "blob_weight": 0.0},
    "model": {"stem": "conv"},
    "trainer": {"schedule": "cosine", "warmup_steps": 0, "val_every_n_steps": 0},
    "postprocess": {"min_component_px": 0, "retina_only": False},
}


def fill_added(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a saved config's ``values`` with every key it predates set to its neutral value.

    Sections that are not mappings are left for the loader to reject with its own error.
    """
    values = copy.deepcopy(values)
    for section, neutral in ADDED_KEYS.items():
        part = values.setdefault(section, {})
        if not isinstance(part, dict):
            continue
        for key, value in neutral.items():
            part.setdefault(key, copy.deepcopy(value))
    return values
