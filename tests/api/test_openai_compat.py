"""The official ``openai`` client against the studio's /v1 aliases, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tunelab.settings import Settings


def test_openai_client_creates_job_from_uploaded_file(base_url: str, chat_file: Path, tiny_model_dir: Path) -> None:
    from openai import ConflictError, NotFoundError, OpenAI, UnprocessableEntityError

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused-locally", max_retries=0)
    with chat_file.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.object == "file" and uploaded.status == "processed"
    assert uploaded.bytes == chat_file.stat().st_size
    assert [f.id for f in client.files.list()] == [uploaded.id]

    job = client.fine_tuning.jobs.create(
        model=str(tiny_model_dir), training_file=uploaded.id, suffix="demo",
        hyperparameters={"n_epochs": 1, "batch_size": 2, "max_steps": 2},  # type: ignore[typeddict-unknown-key]
    )  # fmt: skip
    assert job.object == "fine_tuning.job" and job.status == "queued"
    assert job.training_file == uploaded.id and job.model == str(tiny_model_dir)
    assert job.hyperparameters.n_epochs == 1 and job.hyperparameters.batch_size == 2

    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    events = list(client.fine_tuning.jobs.list_events(job.id))
    assert [e.object for e in events] == ["fine_tuning.job.event"] * 2
    assert [e.message for e in events] == ["Job status changed to queued", "Job status changed to validating_files"]
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []

    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(ConflictError) as caught:
        client.fine_tuning.jobs.pause(job.id)
    assert caught.value.status_code == 409
    assert caught.value.body["code"] == "illegal_transition"  # type: ignore[attr-defined]

    with pytest.raises(NotFoundError):
        client.fine_tuning.jobs.retrieve("job-nope")
    with pytest.raises(UnprocessableEntityError):
        client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file="file-missing.jsonl")


def test_openai_paged_events(base_url: str, chat_file: Path) -> None:
    import httpx

    with chat_file.open("rb") as handle:
        file_id = httpx.post(f"{base_url}/v1/files", files={"file": handle}, data={"purpose": "fine-tune"}).json()["id"]
    created = httpx.post(f"{base_url}/v1/fine_tuning/jobs", json={"model": "m", "training_file": file_id}).json()
    page = httpx.get(f"{base_url}/v1/fine_tuning/jobs/{created['id']}/events", params={"limit": 1}).json()
    assert page["object"] == "list" and page["has_more"] is True and len(page["data"]) == 1
    rest = httpx.get(f"{base_url}/v1/fine_tuning/jobs/{created['id']}/events",
                     params={"after": page["data"][0]["id"]}).json()  # fmt: skip
    assert rest["has_more"] is False and len(rest["data"]) == 1
    bad = httpx.post(f"{base_url}/v1/files", files={"file": ("x.jsonl", b"{}")}, data={"purpose": "assistants"})
    assert bad.status_code == 422 and json.loads(bad.text)["error"]["code"] == "invalid_input"


def test_files_report_the_uploaded_size_and_delete_their_version(client: TestClient, chat_file: Path,
                                                                 settings: Settings) -> None:  # fmt: skip
    from tests.api.conftest import assert_error

    size = chat_file.stat().st_size
    created = client.post("/v1/files", files={"file": ("chat.jsonl", chat_file.read_bytes())},
                          data={"purpose": "fine-tune"}).json()  # fmt: skip
    assert created["bytes"] == size and created["filename"] == "chat.jsonl"
    assert client.get(f"/v1/files/{created['id']}").json()["bytes"] == size
    assert [f["bytes"] for f in client.get("/v1/files").json()["data"]] == [size]
    assert len(list(settings.datasets_dir.iterdir())) == 1
    assert client.delete(f"/v1/files/{created['id']}").json()["deleted"] is True
    assert_error(client.get(f"/v1/files/{created['id']}"), 404, "not_found")
    assert not list(settings.datasets_dir.iterdir())  # the stored version went with the file
    client.post("/api/datasets", files={"file": ("chat.jsonl", chat_file.read_bytes())}, data={"name": "mine"})
    assert_error(client.get("/v1/files/mine"), 404, "not_found")  # only uploads through /v1/files are files


def test_fine_tuning_job_reports_the_tokens_the_engine_trained(
    client: TestClient, make_job: Callable[[str], str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from tunelab.jobs import service, tailer
    from tunelab.training.rundir import RunFiles

    job_id = make_job("completed")
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["trained_tokens"] is None  # nothing trained yet
    files = RunFiles(tmp_path / "run")  # what the engine writes, read the way the worker reads it
    files.metrics({"type": "train", "step": 1, "loss": 2.5, "tokens_seen": 96})
    files.metrics({"type": "train", "step": 2, "loss": 2.1, "tokens_seen": 180})
    with sessions() as session:
        tailer.ingest(session, service.get_job(session, job_id), files.dir)
        session.commit()
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["trained_tokens"] == 180
    files.event("completed", "training completed at step 2", {"steps": 2, "tokens_seen": 181})
    files.close()
    with sessions() as session:
        tailer.ingest(session, service.get_job(session, job_id), files.dir)
        session.commit()
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["trained_tokens"] == 181  # the engine's summary wins
    assert [j["trained_tokens"] for j in client.get("/v1/fine_tuning/jobs").json()["data"]] == [181]
