"""GET /api/providers, and a job's ``provider`` through POST /api/jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import ProviderSettings, Settings

SECRET = "sk-never-shown-0123456789"


@pytest.fixture
def remote_client(tunelab_home: Path) -> Iterator[TestClient]:
    providers = {"oa": ProviderSettings(url="https://api.openai.com/v1", key=SecretStr(SECRET)),
                 "peer": ProviderSettings(kind="tunelab", url="http://gpu-box:8420")}  # fmt: skip
    with TestClient(create_app(Settings(home=tunelab_home, providers=providers))) as client:
        yield client


def test_providers_are_listed_without_their_keys(remote_client: TestClient) -> None:
    response = remote_client.get("/api/providers")
    assert response.status_code == 200 and SECRET not in response.text
    assert response.json() == {"count": 3, "data": [
        {"name": "local", "kind": "local", "url": None, "key_set": False, "key_setting": None, "poll_s": None},
        {"name": "oa", "kind": "openai", "url": "https://api.openai.com", "key_set": True,
         "key_setting": "TUNELAB_PROVIDER_OA_KEY", "poll_s": 5.0},
        {"name": "peer", "kind": "tunelab", "url": "http://gpu-box:8420", "key_set": False,
         "key_setting": "TUNELAB_PROVIDER_PEER_KEY", "poll_s": 5.0},
    ]}  # fmt: skip


def test_provider_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tunelab_home: Path) -> None:
    monkeypatch.setenv("TUNELAB_PROVIDERS", '{"peer": {"kind": "tunelab", "url": "http://a:1", "poll_s": 2}}')
    monkeypatch.setenv("TUNELAB_PROVIDER_PEER_KEY", SECRET)
    monkeypatch.setenv("TUNELAB_PROVIDER_OTHER_BOX_URL", "http://b:2/v1")
    providers = Settings(home=tunelab_home).providers
    assert providers["peer"].url == "http://a:1" and providers["peer"].poll_s == 2
    assert providers["peer"].key.get_secret_value() == SECRET and SECRET not in repr(providers)
    assert providers["other_box"].kind == "openai" and providers["other_box"].url == "http://b:2/v1"


def test_a_job_names_its_provider(remote_client: TestClient, chat_file: Path, tiny_model_dir: Path) -> None:
    body = {"configuration": {"model": str(tiny_model_dir), "dataset": str(chat_file)}, "provider": "peer"}
    created = remote_client.post("/api/jobs", json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["provider"] == "peer" and job["remote"] is None and job["status"] == "queued"
    assert remote_client.get(f"/api/jobs/{job['id']}").json()["provider"] == "peer"
    unknown = remote_client.post("/api/jobs", json=body | {"provider": "nowhere"})
    error = assert_error(unknown, 422, "invalid_input")
    assert "local, oa, peer" in error["message"] and "TUNELAB_PROVIDER_NOWHERE_URL" in error["hint"]
    plain = remote_client.post("/api/jobs", json={"configuration": body["configuration"]}).json()
    assert plain["provider"] == "local"
