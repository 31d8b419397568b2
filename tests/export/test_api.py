"""Exports through the REST API and the SDK: 202 at once, progress, download, clear 4xx answers."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tunelab.api import create_app
from tunelab.settings import Settings


@pytest.fixture
def settings(tunelab_home: Path) -> Settings:
    return Settings(home=tunelab_home)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def make_job(settings: Settings, tiny_run: Path, tmp_path: Path) -> Callable[[str], str]:
    """A job in ``status`` whose run directory is a copy of the tiny run."""
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import create_job, get_job
    from tunelab.store.db import session_factory

    sessions = session_factory(settings.resolved_database_url)

    def make(status: str) -> str:
        with sessions() as session:
            config = json.loads((tiny_run / "config.json").read_text())
            body = {"model": config["model"], "dataset": config["dataset"], "hyperparameters": {"max_steps": 2}}
            job = create_job(session, body, name=f"job-{status}", submit=False)
            steps = {"completed": ["queued", "running", "completed"], "running": ["queued", "running"]}[status]
            for step in steps:
                set_status(session, get_job(session, job.id), step)
            run_dir = tmp_path / f"run-{job.id}"
            shutil.copytree(tiny_run, run_dir)
            get_job(session, job.id).run_dir = str(run_dir)
            session.commit()
            return job.id

    return make


def _wait(api: TestClient, job_id: str, export_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        record: dict[str, Any] = api.get(f"/api/jobs/{job_id}/exports/{export_id}").json()
        if record["status"] in ("completed", "failed"):
            return record
        time.sleep(0.5)
    raise AssertionError("export did not finish")


def test_export_a_completed_job_and_download_it(api: TestClient, make_job: Callable[[str], str]) -> None:
    job_id = make_job("completed")
    started = time.monotonic()
    answer = api.post(f"/api/jobs/{job_id}/exports", json={"format": "gguf"})
    assert answer.status_code == 202, answer.text
    assert time.monotonic() - started < 5  # the request does not wait for the conversion
    record = answer.json()
    assert record["status"] == "queued" and record["progress"] == 0.0 and record["format"] == "gguf"
    done = _wait(api, job_id, record["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0 and done["size"] > 0 and done["artifact_id"]
    listed = api.get(f"/api/jobs/{job_id}/exports").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == record["id"]
    zipped = api.get(f"/api/jobs/{job_id}/exports/{record['id']}/download")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
    assert {"model-f16.gguf", "Modelfile", "README.md", "tunelab_export.json"} <= set(names)
    artifacts = api.get(f"/api/jobs/{job_id}/artifacts").json()["data"]
    assert [a["kind"] for a in artifacts if a["id"] == done["artifact_id"]] == ["export-gguf"]
    formats = api.get("/api/meta").json()["export_formats"]
    assert "gguf-q8_0" in formats and "onnx" in formats


def test_export_errors_are_clear_4xx(api: TestClient, make_job: Callable[[str], str]) -> None:
    running = make_job("running")
    answer = api.post(f"/api/jobs/{running}/exports", json={"format": "adapter"})
    assert answer.status_code == 409 and "only a completed job" in answer.json()["error"]["message"]
    assert api.get(f"/api/jobs/{running}/exports").json() == {"data": [], "count": 0}
    completed = make_job("completed")
    bad = api.post(f"/api/jobs/{completed}/exports", json={"format": "tflite"})
    assert bad.status_code == 422
    assert api.post("/api/jobs/nope/exports", json={"format": "adapter"}).status_code == 404
    missing = api.get(f"/api/jobs/{completed}/exports/7")
    assert missing.status_code == 404 and missing.json()["error"]["hint"]
    assert api.get(f"/api/jobs/{completed}/exports/7/download").status_code == 404


def test_a_failed_export_is_a_record_with_the_reason(api: TestClient, make_job: Callable[[str], str],
                                                     settings: Settings) -> None:  # fmt: skip
    from tunelab.jobs.service import get_job
    from tunelab.store.db import session_factory

    job_id = make_job("completed")
    with session_factory(settings.resolved_database_url)() as session:
        run_dir = Path(get_job(session, job_id).run_dir or "")
    (run_dir / "output" / "adapter_model.safetensors").write_bytes(b"broken")
    record = api.post(f"/api/jobs/{job_id}/exports", json={"format": "merged"}).json()
    done = _wait(api, job_id, record["id"])
    assert done["status"] == "failed" and done["error"]["message"] and done["error"]["hint"]
    assert not (run_dir / record["path"]).exists()
    assert api.get(f"/api/jobs/{job_id}/exports/{record['id']}/download").status_code == 404


def test_sdk_exports_and_script(settings: Settings, make_job: Callable[[str], str], tmp_path: Path) -> None:
    from tests.api.live import thread_server

    from tunelab.client import Client

    job_id = make_job("completed")
    with thread_server(create_app(settings)) as url, Client(url) as client:
        record = client.create_export(job_id, "adapter")
        done = client.wait_export(job_id, record["id"], timeout=300, poll=0.2)
        assert done["status"] == "completed"
        archive = client.download_export(job_id, record["id"], tmp_path)
        assert "adapter_config.json" in zipfile.ZipFile(archive).namelist()
        assert client.list_exports(job_id)["count"] == 1
        script = client.export_script(job_id)
        assert script.startswith("#!/usr/bin/env python") and "CONFIG = {" in script


def test_push_an_adapter_export_to_the_hub(api: TestClient, make_job: Callable[[str], str], online_hub: Any,
                                           monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:  # fmt: skip
    """The export-create body's push_to_hub uploads the finished export with the server's HF_TOKEN."""
    from tunelab.jobs.service import get_job
    from tunelab.store.db import session_factory

    monkeypatch.setenv("HF_TOKEN", "hf_fake_write_token")
    job_id = make_job("completed")
    with_token = api.post(f"/api/jobs/{job_id}/exports",
                          json={"format": "adapter", "push_to_hub": {"repo_id": "alice/numbers", "token": "x"}})  # fmt: skip
    assert with_token.status_code == 422  # the token is the server's, never the caller's
    bad_id = api.post(f"/api/jobs/{job_id}/exports", json={"format": "adapter", "push_to_hub": {"repo_id": "no-slash"}})
    assert bad_id.status_code == 422 and "user/name" in bad_id.json()["error"]["message"]
    assert api.get(f"/api/jobs/{job_id}/exports").json()["count"] == 0  # refused before anything was queued
    answer = api.post(f"/api/jobs/{job_id}/exports",
                      json={"format": "adapter", "push_to_hub": {"repo_id": "alice/numbers"}})  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["push"] == {"repo_id": "alice/numbers", "private": True, "status": "pending", "url": None,
                                     "error": None}  # fmt: skip
    done = _wait(api, job_id, answer.json()["id"])
    assert done["status"] == "completed" and done["error"] is None, done
    assert done["push"]["status"] == "pushed" and done["push"]["url"] == f"{online_hub.url}/alice/numbers"
    repo = online_hub.repos["alice/numbers"]
    assert repo["private"] is True
    with session_factory(settings.resolved_database_url)() as session:
        folder = Path(get_job(session, job_id).run_dir or "") / done["path"]
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(repo["files"])
    assert repo["files"]["adapter_model.safetensors"] == (folder / "adapter_model.safetensors").read_bytes()


def test_a_refused_push_is_a_clear_error_and_the_export_stays(api: TestClient, make_job: Callable[[str], str],
                                                              online_hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("HF_TOKEN", "hf_revoked")
    job_id = make_job("completed")
    answer = api.post(f"/api/jobs/{job_id}/exports",
                      json={"format": "adapter", "push_to_hub": {"repo_id": "alice/numbers", "private": False}})  # fmt: skip
    done = _wait(api, job_id, answer.json()["id"])
    assert done["status"] == "completed", done  # the conversion worked; only the upload was refused
    push = done["push"]
    assert push["status"] == "failed" and push["url"] is None
    assert push["error"]["code"] == "hub_push_failed"
    assert "pushing to alice/numbers failed" in push["error"]["message"] and "401" in push["error"]["message"]
    assert "token can write" in push["error"]["hint"]
    assert "alice/numbers" not in online_hub.repos
    zipped = api.get(f"/api/jobs/{job_id}/exports/{done['id']}/download")
    assert zipped.status_code == 200 and "adapter_config.json" in zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()


def test_sdk_pushes_an_export(settings: Settings, make_job: Callable[[str], str], online_hub: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from tests.api.live import thread_server

    from tunelab.client import Client

    monkeypatch.setenv("HF_TOKEN", "hf_fake_write_token")
    job_id = make_job("completed")
    with thread_server(create_app(settings)) as url, Client(url) as client:
        record = client.create_export(job_id, "adapter", push_to_hub="bob/numbers-public", private=False)
        assert record["push"]["status"] == "pending"
        done = client.wait_export(job_id, record["id"], timeout=300, poll=0.2)
    assert done["push"]["status"] == "pushed" and done["push"]["url"].endswith("/bob/numbers-public")
    assert online_hub.repos["bob/numbers-public"]["private"] is False
    assert "adapter_config.json" in online_hub.repos["bob/numbers-public"]["files"]
