"""The official ``openai`` client against the studio's /v1 aliases, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


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
