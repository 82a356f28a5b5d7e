"""Tests of segclr.config.history: saved run configs fill the keys they predate with their old
behaviour, and every schema key has a decided history (ADDED_KEYS, RUN_ONLY_KEYS or present
since the first release)."""

import pytest
import yaml

from segclr.config import ConfigError, dump_config, from_dict, load_config


def test_a_saved_run_config_fills_keys_it_predates_with_their_old_behaviour(tmp_path):
    """fit's config.yaml holds every key of its time; a key it lacks takes the value that reproduces
    what the run did (config/history.py), not today's default. Keys present in the file are kept."""
    from segclr.config import ADDED_KEYS, RUN_ONLY_KEYS, fill_added

    full = from_dict({}).to_dict()
    old = {section: dict(values) for section, values in full.items()}
    for table in (ADDED_KEYS, RUN_ONLY_KEYS):
        for section, keys in table.items():
            for key in keys:
                old[section].pop(key)
    old["postprocess"]["min_component_px"] = 80  # present in the file: kept, not reset
    path = _write(tmp_path / "config.yaml", yaml.safe_dump(old))
    saved, today = load_config(path, saved_run=True).to_dict(), load_config(path).to_dict()
    for table in (ADDED_KEYS, RUN_ONLY_KEYS):
        for section, keys in table.items():
            for key, neutral in keys.items():
                if (section, key) != ("postprocess", "min_component_px"):
                    assert saved[section][key] == neutral, f"{section}.{key}"
    assert saved["postprocess"]["min_component_px"] == 80
    changed = {f"{s}.{k}" for s in saved for k in saved[s] if saved[s][k] != today[s][k]}
    assert changed == {"data.fluid_crop_by", "postprocess.retina_only", "data.geometry", "data.spacing_aware"}
    assert load_config(path, ["data.fluid_crop_by=component"], saved_run=True).data.fluid_crop_by == "component"
    # a whole section missing (a run older than post-processing) and a new run's file, unchanged
    del old["postprocess"]
    assert load_config(_write(path, yaml.safe_dump(old)), saved_run=True).postprocess.min_component_px == 0
    assert load_config(_write(path, dump_config(from_dict({}))), saved_run=True) == from_dict({})
    # experiment cells fill ADDED_KEYS only: they pin and hash geometry and spacing_aware
    assert "geometry" not in fill_added({"data": {}})["data"]
    assert fill_added({"data": {}}, saved_run=True)["data"]["geometry"] == "source"
    assert fill_added({"data": "oops"})["data"] == "oops"  # left for the loader's own error
    with pytest.raises(ConfigError, match="config section 'data' must be a mapping"):
        load_config(_write(tmp_path / "bad.yaml", "data: oops\n"), saved_run=True)


def _write(path, text):
    path.write_text(text)
    return path


# Every schema key whose place in config/history.py has been decided: present since the first release,
# or added at exactly what runs did before it, or listed in ADDED_KEYS / RUN_ONLY_KEYS. A new key fails
# this test until it is decided: if a run saved before it would behave differently under its default,
# give it an entry in config/history.py, then add it here.
DECIDED_KEYS = {
    "data": "source_domain target_domains eval_domains input_height crop_size batch_size pairs pair_distance "
            "simulation_seed fluid_crop_prob target_patients dataset geometry spacing_aware target_spacing_um "
            "val_patients fluid_crop_by",
    "augment": "enabled gamma contrast brightness speckle_looks speckle_prob noise_std blur_sigma blur_prob scale "
               "rotate_deg flip_prob labeled overlay_prob",
    "model": "num_classes base_channels depth norm dropout head head_stage head_channels head_hidden embedding_dim "
             "stem",
    "objective": "mode contrastive_loss temperature lambda_sup sup_loss dann_weight entropy_weight init_from bn_stats "
                 "lambda_con dice_batch ce_fluid_weight deep_supervision blob_weight",
    "trainer": "max_steps lr weight_decay seed accelerator devices num_nodes strategy precision log_every_n_steps "
               "checkpoint_every_n_steps tensorboard progress_bar num_threads max_bad_steps schedule warmup_steps "
               "val_every_n_steps",
    "svdna": "prob k histogram",
    "postprocess": "min_component_px retina_only",
}


def test_every_schema_key_has_a_decided_history():
    from segclr.config import ADDED_KEYS, RUN_ONLY_KEYS

    schema = {section: set(values) for section, values in from_dict({}).to_dict().items()}
    decided = {section: set(names.split()) for section, names in DECIDED_KEYS.items()}
    new = {f"{s}.{k}" for s in schema for k in schema[s] - decided.get(s, set())}
    assert not new, (f"{sorted(new)}: new config keys; if a run saved before them would now behave differently, "
                     f"give each an entry in src/segclr/config/history.py, then list it in DECIDED_KEYS")
    for table in (ADDED_KEYS, RUN_ONLY_KEYS):
        for section, keys in table.items():
            assert set(keys) <= schema[section], f"{section}: history names a key the schema lacks"
