"""TrainConfig validation, CLI overrides and every shipped example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.cli.train import apply_overrides, coerce, load_train_config
from tunelab.errors import ConfigError
from tunelab.training import TrainConfig, load_config_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_field_has_a_description() -> None:
    for name, field in TrainConfig.model_fields.items():
        assert field.description, name


def test_unknown_fields_and_all_cross_field_problems_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        load_config_dict({"dataset": "", "early_stopping_patience": 2, "method": "full",
                          "precision": "fp16"})
    message = err.value.message
    for part in ("`dataset` is required", "early_stopping_patience", "fp16"):
        assert part in message


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        load_config_dict({"dataset": "x.json", "bogus": 1})


def test_ranges_are_enforced() -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config_dict({"dataset": "x.json", "learning_rate": 1.0})


def test_default_learning_rate_depends_on_method() -> None:
    assert TrainConfig(dataset="x").peak_learning_rate == 2e-4
    assert TrainConfig(dataset="x", method="full").peak_learning_rate == 2e-5


def test_override_coercion() -> None:
    assert coerce("1e-4") == 1e-4 and coerce("8") == 8 and coerce("true") is True
    assert coerce("[q_proj, v_proj]") == ["q_proj", "v_proj"] and coerce("cosine") == "cosine"
    data = apply_overrides({"lora": {"r": 16}}, ["lora.r=8", "learning_rate=1e-4", "output.evaluate=false"])
    assert data == {"lora": {"r": 8}, "learning_rate": 1e-4, "output": {"evaluate": False}}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_load(path: Path, shared_datasets: Path) -> None:
    import yaml

    if "search" in yaml.safe_load(path.read_text()):  # a sweep: checked as one, trials as configs
        from tunelab.sweeps.service import parse_config
        from tunelab.sweeps.space import check_space

        sweep = parse_config(yaml.safe_load(path.read_text()))
        check_space(sweep.search, sweep.hyperparameters)
        assert (path.parent / sweep.dataset).exists(), sweep.dataset
        return
    config = load_train_config(path, [])
    dataset = Path(config.dataset)
    if not dataset.exists() and "shared/datasets" in config.dataset:
        # Examples on the shared samples point at ../../shared/datasets, where they
        # sit beside a checkout; a clone elsewhere finds them through the fixture.
        dataset = shared_datasets / dataset.name
    assert dataset.exists(), config.dataset


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"identity-lora.yaml", "alpaca-lora.yaml"} <= names and len(names) >= 5
    assert "{{name}}" not in (EXAMPLES / "data" / "identity.json").read_text()
