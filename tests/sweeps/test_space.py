"""The search space is checked against TrainConfig before a sweep exists; each error names its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import ConfigError
from tunelab.sweeps import service
from tunelab.sweeps.space import ParamRange, check_space, grid_values


def _refused(session: Session, body: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        service.create_sweep(session, body)
    return caught.value


@pytest.mark.parametrize(
    ("search", "field", "words"),
    [
        ({"learning_rate": {"low": 1e-3, "high": 1e-5}}, "search.learning_rate", "greater than `high`"),
        ({"not_a_field": {"low": 1, "high": 2}}, "search.not_a_field", "not a TrainConfig field"),
        ({"lora.nope": {"low": 1, "high": 2}}, "search.lora.nope", "not a TrainConfig field"),
        ({"learning_rate": {"low": 0, "high": 1e-3, "log": True}}, "search.learning_rate", "log scale needs"),
        ({"learning_rate": {"low": 1e-5, "high": 0.5}}, "search.learning_rate", "is not accepted"),
        ({"epochs": {"low": 1.5, "high": 3}}, "search.epochs", "integer field"),
        ({"epochs": {"type": "float", "low": 1, "high": 3}}, "search.epochs", "not float"),
        ({"scheduler": {"choices": ["cosine", "sideways"]}}, "search.scheduler", "'sideways' is not accepted"),
        ({"method": {"low": 1, "high": 2}}, "search.method", "list them in `choices`"),
        ({"learning_rate": {"high": 1e-3}}, "search.learning_rate", "needs `low` and `high`"),
    ],
)
def test_impossible_ranges_name_the_field(session: Session, sweep_request: Callable[..., dict[str, Any]],
                                          search: dict[str, Any], field: str, words: str) -> None:  # fmt: skip
    error = _refused(session, sweep_request(search=search))
    assert f"`{field}`" in error.message and words in error.message, error.message
    assert error.hint and error.code == "config_invalid"
    assert service.list_sweeps(session)[1] == 0  # nothing stored


def test_every_bad_field_is_named_at_once(session: Session, sweep_request: Callable[..., dict[str, Any]]) -> None:
    error = _refused(session, sweep_request(search={"learning_rate": {"low": 1, "high": 0}, "bogus": {"choices": [1]}}))
    assert "`search.learning_rate`" in error.message and "`search.bogus`" in error.message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": None}, "n_trials"),  # no budget at all
        ({"budget_minutes": 0}, "budget_minutes"),
        ({"parallel": 0}, "parallel"),
        ({"sampler": "annealing"}, "sampler"),
        ({"pruner": {"type": "median"}, "hyperparameters": {"max_steps": 4}}, "hyperparameters.eval_steps"),
        ({"search": {}}, "search"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_impossible_budgets_and_settings_name_the_field(session: Session, sweep_request: Callable[..., dict[str, Any]],
                                                        overrides: dict[str, Any], field: str) -> None:  # fmt: skip
    assert f"`{field}`" in _refused(session, sweep_request(**overrides)).message


def test_the_base_job_is_checked_like_a_job(session: Session, sweep_request: Callable[..., dict[str, Any]]) -> None:
    error = _refused(session, sweep_request(hyperparameters={"batch_size": 1000}))
    assert "batch_size" in error.message
    with pytest.raises(Exception) as caught:
        service.create_sweep(session, sweep_request(dataset="no-such-dataset"))
    assert "no-such-dataset" in str(caught.value)


def test_flat_guide_names_and_types_are_filled_in() -> None:
    space = check_space({"lora_r": ParamRange(low=4, high=16, step=4), "learning_rate": ParamRange(low=1e-4, high=1e-3)}, {})
    assert space["lora.r"] == {"type": "int", "low": 4, "high": 16, "log": False, "step": 4}
    assert space["learning_rate"]["type"] == "float"
    assert grid_values(space["lora.r"]) == [4, 8, 12, 16]
    bools = check_space({"packing": ParamRange()}, {})
    assert bools["packing"] == {"type": "categorical", "log": False, "choices": [True, False]}


def test_grid_needs_steps_and_caps_the_trials(session: Session, sweep_request: Callable[..., dict[str, Any]]) -> None:
    error = _refused(session, sweep_request(sampler="grid"))
    assert "`search.learning_rate`" in error.message and "step" in error.message
    grid = {"learning_rate": {"choices": [1e-4, 1e-3]}, "lora.r": {"low": 4, "high": 8, "step": 4}}
    sweep = service.create_sweep(session, sweep_request(sampler="grid", search=grid, n_trials=100))
    assert sweep.n_trials == 4  # 2 x 2 points
    assert service.create_sweep(session, sweep_request(sampler="grid", search=grid, n_trials=None)).n_trials == 4


def test_a_sweep_is_stored_with_its_study(session: Session, sweep_request: Callable[..., dict[str, Any]]) -> None:
    from tunelab.sweeps import study

    sweep = service.create_sweep(session, sweep_request(sampler="gp", direction="maximize", objective="loss"))
    shown = service.sweep_dict(session, sweep)
    assert shown["status"] == "running" and shown["trials"]["total"] == 0 and "driver_id" not in shown
    assert shown["search"]["lora.r"]["choices"] == [4, 8]
    loaded = study.load(service.database_url(session), sweep)
    assert loaded.direction.name == "MAXIMIZE" and len(loaded.trials) == 0
    assert type(loaded.sampler).__name__ == "GPSampler"
