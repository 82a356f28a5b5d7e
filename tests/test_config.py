import dataclasses
import re
import typing

import pytest
import yaml

from segclr import config as config_module
from segclr.config import ConfigError, RunConfig, dump_config, from_dict, load_config, parse_override, validate


def test_defaults_are_the_papers_loss_weights():
    cfg = from_dict({})
    assert cfg.objective.lambda_sup == 20.0
    assert cfg.objective.temperature == 0.1
    assert cfg.objective.mode == "segclr_uda"
    assert cfg.unlabeled_domains == ["spectralis", "cirrus_like"]


@pytest.mark.parametrize(
    "values, key",
    [
        ({"trainer": {"max_stepz": 3}}, "trainer.max_stepz"),
        ({"modle": {}}, "modle"),
        ({"trainer": {"max_steps": "many"}}, "trainer.max_steps"),
        ({"trainer": {"max_steps": True}}, "trainer.max_steps"),
        ({"objective": {"temperature": "hot"}}, "objective.temperature"),
        ({"objective": {"mode": "magic"}}, "objective.mode"),
        ({"model": {"head": "conv"}}, "model.head"),
        ({"data": {"pairs": "x"}}, "data.pairs"),
        ({"data": {"crop_size": 100}}, "data.crop_size"),
        ({"augment": {"gamma": [0.5]}}, "augment.gamma"),
        ({"data": {"target_domains": "cirrus_like"}}, "data.target_domains"),
    ],
)
def test_bad_values_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(values)


def test_overrides_parse_yaml_values():
    cfg = from_dict({}, ["trainer.max_steps=7", "data.target_domains=[topcon_like]", "model.head=pool",
                         "objective.lambda_sup=5"])
    assert cfg.trainer.max_steps == 7
    assert cfg.data.target_domains == ["topcon_like"]
    assert cfg.model.head == "pool"
    assert cfg.objective.lambda_sup == 5.0


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="section.key=value"):
        from_dict({}, ["trainer.max_steps"])


def test_mode_configs_load_and_round_trip(tmp_path):
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml")):
        cfg = load_config(path)
        dumped = tmp_path / path.name
        dumped.write_text(dump_config(cfg))
        assert load_config(dumped) == cfg


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  nope: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml.*trainer.nope"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_modes_pick_domains():
    assert from_dict({"objective": {"mode": "segclr_dg"}}).unlabeled_domains == ["spectralis"]
    assert from_dict({"objective": {"mode": "supervised"}}).unlabeled_domains == []
    ub = from_dict({"objective": {"mode": "upper_bound"}, "data": {"target_domains": ["topcon_like"]}})
    assert ub.labeled_domain == "topcon_like"


# --------------------------------------------------------------------------- every rule at its edge
# Messages are matched from their start (``^config key '...'``): the key a user must fix comes first.


def _rejects(values, key, *fragments):
    with pytest.raises(ConfigError, match="^config key '" + re.escape(key) + "'") as err:
        from_dict(values)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))
    return str(err.value)


@pytest.mark.parametrize("key", ["data.batch_size", "trainer.max_steps", "model.base_channels", "model.depth",
                                 "data.input_height"])
def test_positive_integers_edge(key):
    section, name = key.split(".")
    extra = {"objective": {"mode": "supervised"}}  # NT-Xent's own batch rule stays out of the way
    values = {**extra, section: {name: 1}}
    if key == "model.depth":
        values["data"] = {"crop_size": 128}
    assert getattr(getattr(from_dict(values), section), name) == 1
    _rejects({**extra, section: {name: 0}}, key, "must be >= 1, got 0")


@pytest.mark.parametrize(
    "key, choices",
    [("objective.mode", config_module.MODES), ("objective.contrastive_loss", config_module.CONTRASTIVE_LOSSES),
     ("objective.sup_loss", config_module.SUP_LOSSES), ("model.head", config_module.HEADS),
     ("model.norm", config_module.NORMS), ("data.pairs", config_module.PAIRS)]
    + ([("objective.bn_stats", config_module.BN_STATS)] if hasattr(config_module, "BN_STATS") else []),
)
def test_every_choice_is_checked_and_listed(key, choices):
    section, name = key.split(".")
    msg = _rejects({section: {name: "nonsense"}}, key)
    assert msg.endswith("'nonsense' is not one of " + ", ".join(choices))
    for choice in choices:  # and every listed choice is accepted by the choice check itself
        cfg = RunConfig()
        setattr(getattr(cfg, section), name, choice)
        cfg.objective.init_from = "x.safetensors"
        validate(cfg)


def test_crop_size_must_be_divisible_by_two_to_the_depth():
    assert from_dict({"data": {"crop_size": 48}, "model": {"depth": 4}}).data.crop_size == 48
    # 40 is a multiple of 2 * depth = 8 but not of 2 ** depth = 16
    _rejects({"data": {"crop_size": 40}, "model": {"depth": 4}}, "data.crop_size",
             "40 is not divisible by 2**model.depth = 16")


def test_temperature_and_contrastive_weight_edges():
    assert from_dict({"objective": {"temperature": 1e-6}}).objective.temperature == 1e-6
    _rejects({"objective": {"temperature": 0}}, "objective.temperature", "must be > 0, got 0")
    if "lambda_con" in {f.name for f in dataclasses.fields(config_module.ObjectiveConfig)}:
        assert from_dict({"objective": {"lambda_con": 0}}).objective.lambda_con == 0.0
        _rejects({"objective": {"lambda_con": -0.5}}, "objective.lambda_con", "must be >= 0, got -0.5")


def test_target_patients_edges():
    assert from_dict({"data": {"target_patients": -1}}).data.target_patients == -1
    assert from_dict({"data": {"target_patients": 0}}).unlabeled_domains == ["spectralis"]
    _rejects({"data": {"target_patients": -2}}, "data.target_patients", "got -2")
    for mode in ("dann", "entropy_min", "adabn"):
        assert from_dict({"objective": {"mode": mode}, "data": {"target_patients": 1}}).objective.mode == mode
        _rejects({"objective": {"mode": mode}, "data": {"target_patients": 0}}, "data.target_patients",
                 f"mode {mode} needs target images")


@pytest.mark.parametrize("mode", config_module.MODES)
def test_which_modes_need_a_target_domain(mode):
    needs = {"segclr_uda", "upper_bound", "multi_domain", "dann", "entropy_min", "adabn", "svdna",
             "svdna_segclr_uda"}
    values = {"objective": {"mode": mode, "init_from": "m.safetensors"}, "data": {"target_domains": []}}
    if mode in needs:
        _rejects(values, "data.target_domains", f"mode {mode} needs a target domain")
    else:
        assert from_dict(values).data.target_domains == []


def test_finetune_needs_a_pretrained_model():
    _rejects({"objective": {"mode": "finetune"}}, "objective.init_from", "mode finetune needs")
    assert from_dict({"objective": {"mode": "finetune", "init_from": "m.safetensors"}}).objective.mode == "finetune"
    assert from_dict({"objective": {"mode": "supervised"}}).objective.init_from == ""


def test_ntxent_needs_two_pairs_per_batch_simsiam_one():
    _rejects({"data": {"batch_size": 1}}, "data.batch_size", "NT-Xent needs at least 2 pairs")
    assert from_dict({"data": {"batch_size": 2}}).data.batch_size == 2
    assert from_dict({"data": {"batch_size": 1}, "objective": {"contrastive_loss": "simsiam"}}).data.batch_size == 1
    assert from_dict({"data": {"batch_size": 1}, "objective": {"mode": "supervised"}}).data.batch_size == 1


# --------------------------------------------------------------------------- types
def test_types_are_checked_and_converted():
    cfg = from_dict({"objective": {"temperature": 1}, "augment": {"gamma": [1, 2]}, "trainer": {"devices": [0, 1]}})
    assert type(cfg.objective.temperature) is float and cfg.augment.gamma == (1.0, 2.0)
    assert type(cfg.augment.gamma) is tuple and all(type(g) is float for g in cfg.augment.gamma)
    assert cfg.trainer.devices == [0, 1]  # Any: taken as is
    for values, key, fragment in [
        ({"objective": {"temperature": True}}, "objective.temperature", "expected a number, got True"),
        ({"trainer": {"seed": 1.5}}, "trainer.seed", "expected int, got 1.5"),
        ({"trainer": {"tensorboard": 1}}, "trainer.tensorboard", "expected bool, got 1"),
        ({"objective": {"mode": 3}}, "objective.mode", "expected str, got 3"),
        ({"data": {"target_domains": "cirrus_like"}}, "data.target_domains", "expected a list, got 'cirrus_like'"),
        ({"data": {"target_domains": ["ok", 7]}}, "data.target_domains[1]", "expected str, got 7"),
        ({"augment": {"gamma": [0.5, 1, 2]}}, "augment.gamma", "expected a list of 2 values, got [0.5, 1, 2]"),
        ({"augment": {"gamma": [0.5, "x"]}}, "augment.gamma[1]", "expected a number, got 'x'"),
    ]:
        _rejects(values, key, fragment)


def test_union_annotations_try_each_member():
    coerce = config_module._coerce
    assert coerce("k", 3, int | str) == 3 and coerce("k", "a", int | str) == "a"
    assert coerce("k", 2, typing.Optional[float]) == 2.0
    assert coerce("k", [1, "b"], list[int | str]) == [1, "b"]
    with pytest.raises(ConfigError, match=r"^config key 'k': value 1\.5 has the wrong type$"):
        coerce("k", 1.5, int | str)
    with pytest.raises(ConfigError, match=r"^config key 'k': unsupported annotation"):
        coerce("k", {}, dict[str, int])


def test_sections_must_be_mappings_and_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"^config section 'trainer' must be a mapping, got 5$"):
        from_dict({"trainer": 5})
    with pytest.raises(ConfigError, match=r"^config section '<root>' must be a mapping, got \[1\]$"):
        config_module._update(RunConfig(), [1])
    with pytest.raises(ConfigError, match=r"^unknown config key 'trainer\.max_stepz'") as err:
        from_dict({"trainer": {"max_stepz": 3}})
    trainer_keys = ", ".join(sorted(f.name for f in dataclasses.fields(config_module.TrainerConfig)))
    assert f"(known in 'trainer': {trainer_keys})" in str(err.value)
    with pytest.raises(ConfigError, match=r"^unknown config key 'modle'") as err:
        from_dict({"modle": {}})
    sections = ", ".join(sorted(f.name for f in dataclasses.fields(RunConfig)))
    assert f"(known in '<root>': {sections})" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict({"trainer": {"qqqqqqqq": 3}})
    assert str(err.value) == f"unknown config key 'trainer.qqqqqqqq' (known in 'trainer': {trainer_keys})"


def test_did_you_mean_names_the_full_key():
    with pytest.raises(ConfigError) as err:
        from_dict({"trainer": {"max_stepz": 3}})
    assert "; did you mean 'trainer.max_steps'? (known in" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict({"modle": {}})
    assert "; did you mean 'model'? (known in" in str(err.value)


# --------------------------------------------------------------------------- overrides and files
def test_parse_override_edges():
    assert parse_override("trainer.max_steps=7") == (["trainer", "max_steps"], 7)
    assert parse_override(" data.pairs = s+a") == (["data", "pairs"], "s+a")
    assert parse_override("objective.init_from=a=b.safetensors") == (["objective", "init_from"], "a=b.safetensors")
    assert parse_override("data.target_domains=[a, b]") == (["data", "target_domains"], ["a", "b"])
    # a bare key that names exactly one field: the hint gives the full key and keeps the value
    with pytest.raises(ConfigError, match=r"section\.key.*; did you mean --set trainer\.max_steps=7\?$"):
        parse_override("max_steps=7")
    for text in ("no_such_key=7", "a.b.c=7"):
        with pytest.raises(ConfigError, match=r"must be section\.key \(e\.g\. trainer\.max_steps\)$"):
            parse_override(text)
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_override("trainer.max_steps=[1")
    with pytest.raises(ConfigError, match="section.key=value.*e\\.g\\. --set trainer\\.max_steps=VALUE$"):
        parse_override("trainer.max_steps")
    with pytest.raises(ConfigError, match="e\\.g\\. --set trainer\\.max_steps=VALUE$"):
        parse_override("   ")
    with pytest.raises(ConfigError, match="e\\.g\\. --set lr=VALUE$"):
        parse_override(" lr ")


def test_override_errors_blame_the_command_line(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.max_steps") as err:
        from_dict({}, ["trainer.max_steps=many"])
    assert "many" in str(err.value)
    good = tmp_path / "good.yaml"
    good.write_text("trainer: {max_steps: 5}\n")
    assert load_config(good, ["trainer.max_steps=9"]).trainer.max_steps == 9
    assert load_config(good).trainer.max_steps == 5
    assert load_config(None, ["trainer.max_steps=4"]).trainer.max_steps == 4


def test_validation_errors_say_where_the_bad_value_came_from(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {crop_size: 40}\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/bad\.yaml: config key 'data\.crop_size'"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("trainer: {max_steps: 5}\n")
    for path, where in ((good, f"{good} with --set values"), (None, "--set values")):
        with pytest.raises(ConfigError) as err:
            load_config(path, ["data.crop_size=40"])
        assert str(err.value).startswith(f"{where}: config key 'data.crop_size': 40 is not"), str(err.value)


def test_config_files_edges(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == from_dict({}) == load_config(None)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/list\.yaml: top level must be a mapping"):
        load_config(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer: [\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/broken\.yaml: not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_dump_keeps_section_and_field_order():
    text = dump_config(from_dict({}))
    loaded = yaml.safe_load(text)
    assert list(loaded) == [f.name for f in dataclasses.fields(RunConfig)]
    assert list(loaded["trainer"]) == [f.name for f in dataclasses.fields(config_module.TrainerConfig)]
    assert loaded["augment"]["gamma"] == [0.6, 1.6]  # tuples as plain lists


def test_to_dict_is_plain_and_complete():
    d = from_dict({}).to_dict()
    assert d["augment"]["gamma"] == [0.6, 1.6] and type(d["augment"]["gamma"]) is list
    assert from_dict(d) == from_dict({})


# --------------------------------------------------------------------------- rules of newer sections
_DATA = {f.name for f in dataclasses.fields(config_module.DataConfig)}


@pytest.mark.skipif("target_spacing_um" not in _DATA, reason="no data.target_spacing_um in this version")
def test_target_spacing_edges():
    assert from_dict({"data": {"target_spacing_um": []}}).data.target_spacing_um == []
    assert from_dict({"data": {"target_spacing_um": [1000, 0.01]}}).data.target_spacing_um == [1000.0, 0.01]
    for bad in ([7.0], [7.0, 20.0, 3.0], [0.0, 20.0], [7.0, 1000.5], [-1.0, 5.0]):
        _rejects({"data": {"target_spacing_um": bad}}, "data.target_spacing_um", f"got {bad}")


@pytest.mark.skipif("geometry" not in _DATA, reason="no data.geometry in this version")
def test_geometry_choice():
    for g in config_module.GEOMETRIES:
        assert from_dict({"data": {"geometry": g}}).data.geometry == g
    msg = _rejects({"data": {"geometry": "warped"}}, "data.geometry")
    assert msg.endswith("'warped' is not one of " + ", ".join(config_module.GEOMETRIES))


@pytest.mark.skipif(not hasattr(RunConfig(), "svdna"), reason="no svdna section in this version")
def test_svdna_edges():
    for k in ([0, 0], [0, 5], [7, 7]):
        assert from_dict({"svdna": {"k": k}}).svdna.k == tuple(k)
    for k in ([-1, 4], [5, 4]):
        _rejects({"svdna": {"k": k}}, "svdna.k", f"got {k}")
    for prob in (0.0, 1.0):
        assert from_dict({"svdna": {"prob": prob}}).svdna.prob == prob
    for prob in (-0.01, 1.01):
        _rejects({"svdna": {"prob": prob}}, "svdna.prob", f"got {prob}")


# ------------------------------------------------------------- keys of the quality recipe (mutation gaps)
@pytest.mark.parametrize("key, value", [("trainer.warmup_steps", -1), ("trainer.val_every_n_steps", -1),
                                        ("postprocess.min_component_px", -1)])
def test_recipe_counts_must_not_be_negative(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"^config key '{re.escape(key)}': must be >= 0, got -1$"):
        from_dict({section: {name: value}})
    assert getattr(getattr(from_dict({section: {name: 0}}), section), name) == 0


def test_schedule_and_warmup_edges():
    with pytest.raises(ConfigError,
                       match=r"^config key 'trainer\.schedule': 'step' is not one of cosine, poly, constant$"):
        from_dict({"trainer": {"schedule": "step"}})
    assert from_dict({"trainer": {"max_steps": 5, "warmup_steps": 4}}).trainer.warmup_steps == 4
    with pytest.raises(ConfigError,
                       match=r"^config key 'trainer\.warmup_steps': 5 must be below trainer\.max_steps \(5\)$"):
        from_dict({"trainer": {"max_steps": 5, "warmup_steps": 5}})
    with pytest.raises(ConfigError, match=r"trainer\.warmup_steps.*\(1\)"):
        from_dict({"trainer": {"max_steps": 1, "warmup_steps": 1}})


def test_overlay_probability_edges():
    assert from_dict({"augment": {"overlay_prob": 1.0}}).augment.overlay_prob == 1.0
    assert from_dict({"augment": {"overlay_prob": 0.0}}).augment.overlay_prob == 0.0
    for bad in (1.01, -0.01, 2.0):
        with pytest.raises(ConfigError, match=r"^config key 'augment\.overlay_prob': must lie in \[0, 1\], got "):
            from_dict({"augment": {"overlay_prob": bad}})


def test_validation_curve_needs_a_validation_split():
    with pytest.raises(ConfigError, match=r"^config key 'trainer\.val_every_n_steps': needs a validation split "
                                          r"\(data\.val_patients\)$"):
        from_dict({"trainer": {"val_every_n_steps": 5}})
    cfg = from_dict({"trainer": {"val_every_n_steps": 5}, "data": {"val_patients": [5]}})
    assert cfg.trainer.val_every_n_steps == 5 and cfg.data.val_patients == [5]

