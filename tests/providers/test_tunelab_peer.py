"""Issue 14's acceptance for providers: a job of one studio trains on a second, real tunelab server.

The second studio (the "peer") is ``tunelab serve`` plus a worker process on
its own home, with tokens required; this studio names it as provider
``peer`` in its settings (URL and token from the environment, as a deployment
would). The job is created through this studio's API with ``provider:
peer`` and followed by this studio's worker (the real ``Worker`` loop): the
peer trains the tiny model, and its events, metrics, checkpoints and output
show up here. Cancel is carried over while the peer's engine is held in a step
(``TUNELAB_TEST_HOOKS``), and a wrong token fails the job naming the setting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.api.live import free_port, start_api, start_worker, stop
from tests.faults.helpers import wait_status, wait_until, worker_thread

from tunelab.api import create_app
from tunelab.settings import Settings
from tunelab.store.db import session_factory
from tunelab.store.models import Job, ModelEntry

FAST = {"max_rows": 24, "max_length": 96, "batch_size": 2, "output": {"evaluate": False}}
HOLD_S = 25  # the peer's engine waits this long inside step 3, so a cancel lands mid-run however fast it trains


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A second studio: API and worker processes on their own home, an admin token, steps held at 3."""
    from tunelab.store.tokens import create_token

    home = tmp_path_factory.mktemp("peer-home")
    with session_factory(f"sqlite:///{home / 'tunelab.db'}")() as session:
        _row, token = create_token(session, "studio-a", ["admin"])  # admin: it names the tiny model's folder
    env = {"TUNELAB_REQUIRE_TOKEN": "1", "TUNELAB_TEST_HOOKS": f"step@3={HOLD_S}",
           "TUNELAB_ALLOW_SERVER_PATHS": json.dumps([str(tmp_path_factory.getbasetemp())])}  # fmt: skip
    port, log = free_port(), home / "peer.log"
    api = start_api(home, port, log, env)
    worker = start_worker(home, log, env)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "home": home, "log": log}
    finally:
        stop(worker)
        stop(api)


@pytest.fixture
def studio(peer: dict[str, Any], tunelab_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """This studio's API, with the peer as provider ``peer`` (and ``badpeer``: same URL, wrong token)."""
    providers = {name: {"kind": "tunelab", "url": peer["url"], "poll_s": 0.3} for name in ("peer", "badpeer")}
    monkeypatch.setenv("TUNELAB_PROVIDERS", json.dumps(providers))
    monkeypatch.setenv("TUNELAB_PROVIDER_PEER_KEY", peer["token"])
    monkeypatch.setenv("TUNELAB_PROVIDER_BADPEER_KEY", "tl_not-the-token")
    with TestClient(create_app(Settings(home=tunelab_home, offline=True, monitor_interval_s=0))) as client:
        yield client


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [{"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."} for i in range(24)]
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(rows))
    return path


def submit(client: TestClient, provider: str, model: Path, data: Path, **hyper: Any) -> dict[str, Any]:
    body = {"name": f"on {provider}", "provider": provider,
            "configuration": {"model": str(model), "dataset": str(data), "hyperparameters": FAST | hyper}}  # fmt: skip
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def on_peer(peer: dict[str, Any], path: str) -> Any:
    response = httpx.get(f"{peer['url']}{path}", headers={"Authorization": f"Bearer {peer['token']}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_job_trains_on_a_peer_studio_and_its_events_metrics_and_output_appear_here(
    peer: dict[str, Any], studio: TestClient, tunelab_home: Path, tiny_model_dir: Path, data: Path
) -> None:
    listed = studio.get("/api/providers")
    assert [(p["name"], p["kind"], p["key_set"]) for p in listed.json()["data"]] == [
        ("local", "local", False), ("badpeer", "tunelab", True), ("peer", "tunelab", True)]  # fmt: skip
    assert peer["token"] not in listed.text
    factory = session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")
    job = submit(studio, "peer", tiny_model_dir, data, max_steps=2, save_steps=1)
    assert job["provider"] == "peer"
    with worker_thread(tunelab_home):
        done = wait_status(factory, job["id"], ("completed", "failed", "cancelled"), timeout=300)
    assert done.status == "completed", (done.error, (peer["log"]).read_text()[-3000:])

    remote = done.remote or {}
    there = on_peer(peer, f"/api/jobs/{remote['job_id']}")
    assert there["status"] == "completed" and there["tags"] == ["openai"]
    theirs = [(m["step"], m["loss"]) for m in on_peer(peer, f"/api/jobs/{remote['job_id']}/metrics")["data"]]
    ours = [(m["step"], m["loss"]) for m in studio.get(f"/api/jobs/{job['id']}/metrics").json()["data"]]
    assert ours == theirs and [step for step, _ in ours] == [1, 2]
    events = studio.get(f"/api/jobs/{job['id']}/events", params={"type": "event"}).json()["data"]
    kinds = [event["data"].get("type") for event in events]
    assert kinds[0] == "remote_started" and {"started", "completed", "remote_result"} <= set(kinds)
    assert remote["fine_tuned_model"] and remote["checkpoints"] and remote["after"]
    artifacts = {a["path"] for a in studio.get(f"/api/jobs/{job['id']}/artifacts").json()["data"]}
    assert {"output/adapter_config.json", "output/adapter_model.safetensors"} <= artifacts, artifacts
    with factory() as session:
        (model,) = session.scalars(select(ModelEntry).where(ModelEntry.source == "job")).all()
    assert model.info["job_id"] == job["id"] and (Path(model.location) / "adapter_config.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_cancel_reaches_the_peer_and_a_wrong_token_fails_clearly(
    peer: dict[str, Any], studio: TestClient, tunelab_home: Path, tiny_model_dir: Path, data: Path
) -> None:
    factory = session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")
    job = submit(studio, "peer", tiny_model_dir, data, max_steps=6)
    refused = submit(studio, "badpeer", tiny_model_dir, data, max_steps=2)
    with worker_thread(tunelab_home):

        def remote_id() -> str | None:
            with factory() as session:
                row = session.get(Job, job["id"])
                return (row.remote or {}).get("job_id") if row is not None else None

        wait_until(lambda: remote_id() is not None, 180, "the remote job")
        held = peer["home"] / "runs" / str(remote_id()) / "hook-step-3"
        wait_until(held.exists, 240, "the peer's engine held in step 3")
        assert studio.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
        ended = wait_status(factory, job["id"], ("completed", "failed", "cancelled"), timeout=240)
        failed = wait_status(factory, refused["id"], ("completed", "failed", "cancelled"), timeout=120)
    assert ended.status == "cancelled", ended.error
    assert on_peer(peer, f"/api/jobs/{remote_id()}")["status"] == "cancelled"
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["code"] == "provider_unauthorized"
    assert "TUNELAB_PROVIDER_BADPEER_KEY" in failed.error["hint"] and "tl_not-the-token" not in json.dumps(failed.error)
