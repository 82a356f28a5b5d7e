import pytest

from segclr.config import ConfigError, dump_config, from_dict, load_config


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
