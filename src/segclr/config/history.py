"""Config keys added after runs and cells were saved, with the value that reproduces the old behaviour.

A ``config.yaml`` written by ``fit`` holds every key of its time. A key it lacks did not exist
when the run trained, so the run behaved as that key's *neutral* value, not as today's default:
``data.fluid_crop_by`` was added at ``pixel`` and its default later became ``component``. Filling a
saved config from :data:`ADDED_KEYS` keeps a resumed run (``fit --resume``) and a committed
experiment cell training and scoring as they did.

Two tables, because a key can enter the schema in two ways:

* :data:`ADDED_KEYS`: added at the value that reproduces the old behaviour (``data.fluid_crop_by``
  at ``pixel``), perhaps with a new default later. At that value the key also stays out of an
  experiment cell's hash, so committed cells remain valid.
* :data:`RUN_ONLY_KEYS`: added with a default that already changed the behaviour
  (``data.geometry``: runs before it trained on the source grid, the default became ``native``).
  Committed cells pin the old value and hash it, so these fill saved runs only.

A new schema key goes in one of them unless its default is exactly what runs did before it;
``tests/test_config_history.py`` lists every key that has been decided and fails on an undecided one.
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


# Keys whose introduced default already changed the behaviour: a run saved before them behaved as this.
RUN_ONLY_KEYS: dict[str, dict[str, Any]] = {
    "data": {"geometry": "source", "spacing_aware": False},
}


def fill_added(values: dict[str, Any], saved_run: bool = False) -> dict[str, Any]:
    """A copy of stored config ``values`` with every key it predates set to its old behaviour.

    ``ADDED_KEYS`` always; ``RUN_ONLY_KEYS`` too with ``saved_run`` (a ``config.yaml`` or bundle
    config that ``fit`` wrote; not an experiment cell, whose hash keeps those keys). Sections that
    are not mappings are left for the loader to reject with its own error.
    """
    values = copy.deepcopy(values)
    tables = (ADDED_KEYS, RUN_ONLY_KEYS) if saved_run else (ADDED_KEYS,)
    for section, neutral in ((s, n) for table in tables for s, n in table.items()):
        part = values.setdefault(section, {})
        if not isinstance(part, dict):
            continue
        for key, value in neutral.items():
            part.setdefault(key, copy.deepcopy(value))
    return values
