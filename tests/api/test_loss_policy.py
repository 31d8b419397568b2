"""``loss.loss_fn`` is code: the API takes it from admins only, never from a job body with the train scope.

Every way a body reaches the engine (jobs, the OpenAI-style route, saved
configurations, sweeps: base values and every searched choice, a job made
from an admin's saved configuration) answers a train token 403
``loss_fn_not_allowed`` naming the field and the scope, and stores nothing;
the built-in loss options need no admin; an admin's job keeps its ``loss_fn``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error
from tests.api.test_security import _token

from tunelab.api import create_app
from tunelab.settings import Settings

BUILTIN = "smollm2-135m-instruct"
LOSS_FN = {"loss": {"loss_fn": "tests.training.loss_fns:doubled"}}


class Studio:
    """The app behind a token wall, with a train and an admin token and one stored dataset."""

    def __init__(self, client: TestClient, train: str, admin: str, dataset: str) -> None:
        self.client, self.dataset = client, dataset
        self.train = {"Authorization": f"Bearer {train}"}
        self.admin = {"Authorization": f"Bearer {admin}"}

    def job(self, headers: dict[str, str], hyper: dict[str, Any]) -> Any:
        body = {
            "configuration": {
                "model": BUILTIN,
                "dataset": self.dataset,
                "hyperparameters": {"max_steps": 1, **hyper},
            }
        }
        return self.client.post("/api/jobs", json=body, headers=headers)

    def count(self, route: str) -> int:
        return int(self.client.get(route, headers=self.admin).json()["count"])


@pytest.fixture
def studio(settings: Settings, chat_file: Path) -> Iterator[Studio]:
    secured = settings.model_copy(update={"require_token": True})
    train, admin = _token(secured, "train"), _token(secured, "admin")
    with TestClient(create_app(secured)) as client:
        with chat_file.open("rb") as handle:
            uploaded = client.post("/api/datasets", files={"file": ("chat.jsonl", handle)}, data={"name": "chat"},
                                   headers={"Authorization": f"Bearer {train}"})  # fmt: skip
        assert uploaded.status_code == 201, uploaded.text
        yield Studio(client, train, admin, str(uploaded.json()["version"]["id"]))


def _refused(answer: Any, field: str) -> None:
    error = assert_error(answer, 403, "loss_fn_not_allowed")
    assert f"`{field}`" in error["message"] and "'train' scope" in error["message"]
    assert "--scope admin" in error["hint"] and "tunelab train config.yaml" in error["hint"]
    assert error["details"] == {"field": field, "scope": "admin"}


def test_a_train_token_may_not_name_a_loss_fn_in_any_body(studio: Studio) -> None:
    client, train = studio.client, studio.train
    _refused(studio.job(train, LOSS_FN), "hyperparameters.loss.loss_fn")
    openai = {"model": BUILTIN, "training_file": studio.dataset, "hyperparameters": LOSS_FN}
    _refused(
        client.post("/v1/fine_tuning/jobs", json=openai, headers=train),
        "hyperparameters.loss.loss_fn",
    )
    saved = {
        "model": BUILTIN,
        "dataset": studio.dataset,
        "hyperparameters": {"max_steps": 1, **LOSS_FN},
    }
    _refused(
        client.post("/api/configurations", json=saved, headers=train),
        "hyperparameters.loss.loss_fn",
    )
    sweep = {"name": "s", "model": BUILTIN, "dataset": studio.dataset, "n_trials": 2,
             "hyperparameters": {"max_steps": 1}, "search": {"learning_rate": {"low": 1e-4, "high": 1e-3}}}  # fmt: skip
    _refused(client.post("/api/sweeps", json={**sweep, "hyperparameters": {"max_steps": 1, **LOSS_FN}}, headers=train),
             "hyperparameters.loss.loss_fn")  # fmt: skip
    # a searched choice is code in some trial too, even when the first choice is none
    searched = {
        **sweep,
        "search": {"loss.loss_fn": {"choices": [None, "tests.training.loss_fns:doubled"]}},
    }
    _refused(client.post("/api/sweeps", json=searched, headers=train), "search.loss.loss_fn")
    assert (
        studio.count("/api/jobs")
        == studio.count("/api/configurations")
        == studio.count("/api/sweeps")
        == 0
    )


def test_the_built_in_loss_options_need_no_admin(studio: Studio) -> None:
    built_in = {"loss": {"label_smoothing": 0.1, "token_weights": {"<|im_end|>": 2.0}}}
    created = studio.job(studio.train, built_in)
    assert created.status_code == 201, created.text
    assert created.json()["config"]["hyperparameters"]["loss"] == built_in["loss"]


def test_an_admin_may_name_a_loss_fn_and_a_train_token_may_not_run_it(studio: Studio) -> None:
    created = studio.job(studio.admin, LOSS_FN)
    assert created.status_code == 201, created.text
    assert (
        created.json()["config"]["hyperparameters"]["loss"]["loss_fn"]
        == "tests.training.loss_fns:doubled"
    )
    saved = {
        "model": BUILTIN,
        "dataset": studio.dataset,
        "hyperparameters": {"max_steps": 1, **LOSS_FN},
    }
    configuration = studio.client.post("/api/configurations", json=saved, headers=studio.admin)
    assert configuration.status_code == 201, configuration.text
    reuse = studio.client.post(
        "/api/jobs", json={"configuration_id": configuration.json()["id"]}, headers=studio.train
    )
    _refused(reuse, "hyperparameters.loss.loss_fn")
    assert studio.count("/api/jobs") == 1


def test_a_malformed_loss_fn_from_an_admin_is_a_422_naming_it(studio: Studio) -> None:
    error = assert_error(
        studio.job(studio.admin, {"loss": {"loss_fn": "rm -rf /"}}), 422, "config_invalid"
    )
    assert "`loss.loss_fn` 'rm -rf /' is not 'package.module:function'" in error["message"]
