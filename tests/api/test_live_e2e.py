"""End to end over real HTTP: upload, train the tiny model, follow live, download; API restarts."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.api.live import free_port, start_api, start_worker, stop

from tunelab.client import Client

FAST = {"batch_size": 2, "max_length": 96, "max_rows": 48, "eval_max_rows": 4, "save_steps": 2,
        "output": {"evaluate": False}}  # fmt: skip


@pytest.fixture
def studio(tunelab_home: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """API process + separate worker process on one home; both stopped by the test."""
    port = free_port()
    log = tmp_path / "studio.log"
    api = start_api(tunelab_home, port, log)
    worker = start_worker(tunelab_home, log)
    state: dict[str, Any] = {"api": api, "worker": worker, "port": port, "log": log, "home": tunelab_home}
    try:
        yield state
    finally:
        stop(state["worker"])
        stop(state["api"])


def _follow_ws(url: str, job_id: str) -> list[dict[str, Any]]:
    from websockets.sync.client import connect

    events = []
    with connect(f"{url.replace('http', 'ws')}/ws/jobs/{job_id}", open_timeout=10) as ws:
        for message in ws:
            event = json.loads(message)
            events.append(event)
            if event["type"] in ("end", "error"):
                break
    return events


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_upload_train_follow_download(studio: dict[str, Any], shared_datasets: Path,
                                      tiny_model_dir: Path, tmp_path: Path) -> None:  # fmt: skip
    url = f"http://127.0.0.1:{studio['port']}"
    with Client(url) as client:
        uploaded = client.upload_dataset(shared_datasets / "alpaca_en_demo.json")
        job = client.create_job(str(tiny_model_dir), uploaded["version"]["id"], FAST | {"max_steps": 4},
                                name="e2e", tags=["e2e"])  # fmt: skip
        events = _follow_ws(url, job["id"])
        assert events[-1] == {"type": "end", "job_id": job["id"], "status": "completed", "id": events[-2]["id"]}
        statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
        assert statuses == ["created", "queued", "running", "completed"], (statuses, studio["log"].read_text()[-3000:])
        steps = [e["data"]["step"] for e in events if e["type"] == "metrics" and e["data"].get("loss") is not None]
        assert steps == [1, 2, 3, 4]
        ids = [e["id"] for e in events[:-1]]
        assert ids == sorted(set(ids))

        artifacts = {a["path"]: a for a in client.job_artifacts(job["id"])["data"]}
        adapter = artifacts["output/adapter_model.safetensors"]
        saved = client.download_artifact(job["id"], adapter["id"], tmp_path)
        assert saved.stat().st_size == adapter["size"] > 0
        assert client.get_job(job["id"])["status"] == "completed"
        assert len(client.job_metrics(job["id"])["data"]) >= 4
        assert client.job_checkpoints(job["id"])["count"] >= 1


def _collect(client: Client, job_id: str, into: list[dict[str, Any]]) -> None:
    for event in client.stream_job(job_id, retry_s=0.3):
        into.append(event)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_api_restart_mid_job_loses_no_events(studio: dict[str, Any], shared_datasets: Path,
                                             tiny_model_dir: Path) -> None:  # fmt: skip
    url = f"http://127.0.0.1:{studio['port']}"
    client = Client(url)
    uploaded = client.upload_dataset(shared_datasets / "alpaca_en_demo.json")
    job = client.create_job(str(tiny_model_dir), uploaded["version"]["id"], FAST | {"max_steps": 20})
    seen: list[dict[str, Any]] = []
    follower = threading.Thread(target=_collect, args=(client, job["id"], seen), daemon=True)
    follower.start()
    deadline = time.monotonic() + 180
    while not any(e["type"] == "metrics" for e in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(e["type"] == "metrics" for e in seen), studio["log"].read_text()[-3000:]

    studio["api"].send_signal(signal.SIGKILL)  # the API dies hard mid-job
    studio["api"].wait()
    seen_at_kill = len(seen)
    time.sleep(2)
    studio["api"] = start_api(studio["home"], studio["port"], studio["log"])
    assert Client(url).get_job(job["id"])["status"] in ("running", "completed")

    follower.join(timeout=300)
    assert not follower.is_alive()
    assert seen[-1]["type"] == "end" and seen[-1]["status"] == "completed"
    stored = client.job_events(job["id"], limit=10_000)["data"]
    assert [e["id"] for e in seen[:-1]] == [e["id"] for e in stored]  # nothing missed, nothing twice
    assert len(seen) > seen_at_kill
    steps = [e["data"]["step"] for e in seen if e["type"] == "metrics" and e["data"].get("loss") is not None]
    assert steps == list(range(1, 21))
    client.close()
