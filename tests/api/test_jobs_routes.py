"""Jobs routes: create, list, control, and every illegal transition answering 409."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

ALL = ["created", "queued", "running", "paused", "completed", "failed", "cancelled"]
# The user actions and the states each is legal from (DESIGN.md job states).
LEGAL = {
    "pause": {"running"},
    "resume": {"paused", "created"},
    "cancel": {"created", "queued", "running", "paused"},
    "retry": {"failed", "cancelled"},
}


def _job_body(chat_file: Path, **extra: object) -> dict[str, object]:
    config = {"model": "tiny-model", "dataset": str(chat_file), "hyperparameters": {"max_steps": 2}}
    return {"name": "first", "tags": ["demo"], "configuration": config, **extra}


def test_create_list_get_job(client: TestClient, chat_file: Path) -> None:
    created = client.post("/api/jobs", json=_job_body(chat_file, priority="high"))
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and job["priority"] == "high" and job["tags"] == ["demo"]
    assert job["save_options"]["save_model"] is True
    client.post("/api/jobs", json=_job_body(chat_file, name="second", tags=[], submit=False))

    page = client.get("/api/jobs").json()
    assert page["count"] == 2 and [j["name"] for j in page["data"]] == ["second", "first"]
    assert client.get("/api/jobs", params={"tag": "demo"}).json()["count"] == 1
    assert client.get("/api/jobs", params={"status": "created"}).json()["data"][0]["name"] == "second"
    paged = client.get("/api/jobs", params={"limit": 1, "offset": 1}).json()
    assert paged["count"] == 2 and [j["name"] for j in paged["data"]] == ["first"]
    assert client.get(f"/api/jobs/{job['id']}").json()["id"] == job["id"]
    events = client.get(f"/api/jobs/{job['id']}/events").json()["data"]
    assert [e["data"]["status"] for e in events if e["type"] == "status"] == ["created", "queued"]


def test_create_job_rejects_bad_configuration(client: TestClient, chat_file: Path) -> None:
    body = _job_body(chat_file)
    body["configuration"]["hyperparameters"] = {"max_steps": -1}  # type: ignore[index]
    assert_error(client.post("/api/jobs", json=body), 422, "config_invalid")
    missing = {"name": "x", "configuration": {"model": "m"}}
    error = assert_error(client.post("/api/jobs", json=missing), 422, "invalid_input")
    assert "configuration.dataset" in error["hint"]
    assert_error(client.post("/api/jobs", json={"name": "x"}), 422, "invalid_input")
    bad_priority = _job_body(chat_file, priority="urgent")
    assert "priority" in assert_error(client.post("/api/jobs", json=bad_priority), 422, "invalid_input")["hint"]
    unknown = _job_body(chat_file, colour="red")
    assert "colour" in assert_error(client.post("/api/jobs", json=unknown), 422, "invalid_input")["message"]


@pytest.mark.parametrize("action", sorted(LEGAL))
@pytest.mark.parametrize("status", ALL)
def test_transitions(client: TestClient, make_job: Callable[[str], str], action: str, status: str) -> None:
    job_id = make_job(status)
    response = client.post(f"/api/jobs/{job_id}/{action}")
    if status in LEGAL[action]:
        assert response.status_code in (200, 201), response.text
        return
    if action == "retry":
        error = assert_error(response, 409, "conflict")
        assert error["details"]["allowed"] == ["cancelled", "failed"]
    else:
        error = assert_error(response, 409, "illegal_transition")
        assert error["details"]["status"] == status and "allowed" in error["details"]
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == status


def test_pause_and_cancel_of_running_job_are_requests(client: TestClient, make_job: Callable[[str], str]) -> None:
    job_id = make_job("running")
    assert client.post(f"/api/jobs/{job_id}/pause").json()["requested_action"] == "pause"
    again = client.post(f"/api/jobs/{job_id}/pause").json()  # idempotent while pending
    assert again["status"] == "running" and again["requested_action"] == "pause"
    cancelled = client.post(f"/api/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "running" and cancelled["requested_action"] == "cancel"
    error = assert_error(client.post(f"/api/jobs/{job_id}/pause"), 409, "conflict")
    assert "cancel" in error["message"]


def test_retry_makes_a_new_job(client: TestClient, make_job: Callable[[str], str]) -> None:
    job_id = make_job("failed")
    retried = client.post(f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 201
    assert retried.json()["retry_of"] == job_id and retried.json()["status"] == "queued"


@pytest.mark.parametrize("status", ALL)
def test_delete(client: TestClient, make_job: Callable[[str], str], status: str) -> None:
    job_id = make_job(status)
    response = client.delete(f"/api/jobs/{job_id}")
    if status in ("created", "completed", "failed", "cancelled"):
        assert response.status_code == 204
        assert_error(client.get(f"/api/jobs/{job_id}"), 404, "not_found")
    else:
        assert_error(response, 409, "conflict")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/jobs/job-nope"),
        ("post", "/api/jobs/job-nope/pause"),
        ("post", "/api/jobs/job-nope/resume"),
        ("post", "/api/jobs/job-nope/cancel"),
        ("post", "/api/jobs/job-nope/retry"),
        ("delete", "/api/jobs/job-nope"),
        ("get", "/api/jobs/job-nope/events"),
        ("get", "/api/jobs/job-nope/metrics"),
        ("get", "/api/jobs/job-nope/checkpoints"),
        ("get", "/api/jobs/job-nope/artifacts"),
        ("get", "/api/jobs/job-nope/artifacts/1"),
        ("get", "/api/jobs/job-nope/stream"),
        ("get", "/api/configurations/cfg-nope"),
        ("get", "/api/datasets/ds-nope"),
        ("get", "/api/datasets/ds-nope/rows"),
        ("delete", "/api/datasets/ds-nope"),
        ("get", "/v1/fine_tuning/jobs/job-nope"),
        ("post", "/v1/fine_tuning/jobs/job-nope/cancel"),
        ("get", "/v1/fine_tuning/jobs/job-nope/events"),
        ("get", "/v1/files/file-nope"),
        ("get", "/api/no-such-route"),
    ],
)
def test_unknown_ids_answer_404(client: TestClient, method: str, path: str) -> None:
    assert_error(getattr(client, method)(path), 404, "not_found")


def test_compare_and_results(client: TestClient, make_job: Callable[[str], str], sessions: object) -> None:
    from tunelab.jobs.tailer import upsert_metric

    first, second = make_job("completed"), make_job("failed")
    with sessions() as session:  # type: ignore[operator]
        for step, loss in ((1, 2.0), (2, 1.5), (3, 1.7)):
            upsert_metric(session, first, {"step": step, "loss": loss})
        session.commit()
    metrics = client.get(f"/api/jobs/{first}/metrics", params={"last_n": 2}).json()
    assert [m["step"] for m in metrics["data"]] == [2, 3]
    result = client.post("/api/jobs/compare", json={"job_ids": [first, second], "metrics": ["loss"]}).json()
    assert result["jobs"][0]["loss"]["final"] == 1.7 and result["jobs"][0]["loss"]["best"] == 1.5
    assert result["jobs"][1]["loss"]["final"] is None
    assert client.get(f"/api/jobs/{first}/checkpoints").json() == {"data": [], "count": 0}
    assert_error(client.post("/api/jobs/compare", json={"job_ids": [first, "job-nope"]}), 404, "not_found")


def test_websocket_replays_from_cursor_and_ends(client: TestClient, make_job: Callable[[str], str]) -> None:
    job_id = make_job("completed")
    with client.websocket_connect(f"/ws/jobs/{job_id}") as ws:
        events = [ws.receive_json() for _ in range(5)]
    assert [e["data"]["status"] for e in events[:4]] == ["created", "queued", "running", "completed"]
    assert events[4] == {"type": "end", "job_id": job_id, "status": "completed", "id": events[3]["id"]}
    with client.websocket_connect(f"/ws/jobs/{job_id}?after={events[1]['id']}") as ws:
        resumed = [ws.receive_json() for _ in range(3)]
    assert [e["id"] for e in resumed[:2]] == [events[2]["id"], events[3]["id"]] and resumed[2]["type"] == "end"
    with client.websocket_connect("/ws/jobs/job-nope") as ws:
        assert ws.receive_json()["error"]["code"] == "not_found"


def test_openapi_schema_lists_every_resource(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/jobs", "/api/jobs/{job_id}/stream", "/api/datasets", "/api/datasets/preview",
                 "/api/models/info", "/api/configurations/best", "/api/resources/current",
                 "/v1/files", "/v1/fine_tuning/jobs/{job_id}/events"):  # fmt: skip
        assert path in paths, path
    create = paths["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["$ref"].endswith("JobCreate")
