"""The intervention routes: 202 with the recorded request for a running job, 409 from every other
state, 422 on bad rates, 404 on unknown jobs; the SDK calls the same routes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import PATHS, assert_error

from tunelab.jobs.service import intervention_cursor, pending_interventions

ROUTES = {
    "checkpoint": ("checkpoint", None),
    "learning_rate": ("learning-rate", {"learning_rate": 1e-4}),
    "stop_early": ("stop-early", None),
}


@pytest.mark.parametrize("status", [s for s in PATHS if s != "running"])
@pytest.mark.parametrize("action", sorted(ROUTES))
def test_only_a_running_job_takes_interventions(client: TestClient, make_job: Callable[[str], str],
                                                action: str, status: str) -> None:
    path, body = ROUTES[action]
    job_id = make_job(status)
    error = assert_error(client.post(f"/api/jobs/{job_id}/{path}", json=body), 409, "illegal_transition")
    assert "running" in error["message"]


def test_requests_on_a_running_job_are_recorded_for_the_worker(
    client: TestClient, make_job: Callable[[str], str], sessions: sessionmaker[Session]
) -> None:
    job_id = make_job("running")
    with sessions() as session:
        cursor = intervention_cursor(session, job_id)
    answers = []
    for action, (path, body) in ROUTES.items():
        response = client.post(f"/api/jobs/{job_id}/{path}", json=body)
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["job"]["id"] == job_id and answer["job"]["status"] == "running"
        assert answer["request"]["action"] == action and answer["request"]["status"] == "requested"
        answers.append(answer["request"])
    assert answers[1]["value"] == 1e-4 and answers[0]["value"] is None
    assert [a["answer_event"] for a in answers] == ["checkpoint_saved", "learning_rate_changed", "stopped_early"]
    with sessions() as session:
        pending = pending_interventions(session, job_id, cursor)
    assert [(i, a, v) for i, a, v in pending] == [(a["id"], a["action"], a["value"]) for a in answers]
    events = client.get(f"/api/jobs/{job_id}/events", params={"type": "event"}).json()["data"]
    kinds = [e["data"]["type"] for e in events]
    assert kinds[-3:] == ["checkpoint_requested", "learning_rate_requested", "stop_early_requested"]


@pytest.mark.parametrize("body", [{"learning_rate": 0.5}, {"learning_rate": 0}, {"learning_rate": "fast"},
                                  {}, {"lr": 1e-4}])
def test_bad_learning_rates_are_422(client: TestClient, make_job: Callable[[str], str], body: dict) -> None:
    job_id = make_job("running")
    error = assert_error(client.post(f"/api/jobs/{job_id}/learning-rate", json=body), 422, "invalid_input")
    assert "learning_rate" in error["message"]


def test_unknown_job_is_404_and_a_stopping_job_is_409(client: TestClient, make_job: Callable[[str], str]) -> None:
    assert_error(client.post("/api/jobs/job-nope/checkpoint"), 404, "not_found")
    job_id = make_job("running")
    assert client.post(f"/api/jobs/{job_id}/pause").status_code == 200
    assert_error(client.post(f"/api/jobs/{job_id}/stop-early"), 409, "conflict")


def test_meta_lists_the_interventions(client: TestClient) -> None:
    meta = client.get("/api/meta").json()
    assert meta["interventions"] == {"checkpoint": ["running"], "learning_rate": ["running"],
                                     "stop_early": ["running"]}
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/jobs/{job_id}/learning-rate" in paths
    assert paths["/api/jobs/{job_id}/stop-early"]["post"]["responses"]["202"]


def test_sdk_calls_the_routes(base_url: str, make_job: Callable[[str], str]) -> None:
    from tunelab.client import Client
    from tunelab.errors import TunelabError

    job_id = make_job("running")
    with Client(base_url) as sdk:
        assert sdk.checkpoint_job(job_id)["request"]["action"] == "checkpoint"
        assert sdk.set_learning_rate(job_id, 2e-4)["request"]["value"] == 2e-4
        assert sdk.stop_early(job_id)["request"]["answer_event"] == "stopped_early"
        with pytest.raises(TunelabError) as info:
            sdk.set_learning_rate(job_id, 1.0)
    assert info.value.code == "invalid_input" and info.value.details["http_status"] == 422
