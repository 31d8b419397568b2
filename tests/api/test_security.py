"""Tokens, scopes, unsafe binds, CORS, and the error shape of every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.errors import ConfigError
from tunelab.settings import Settings


def _token(settings: Settings, *scopes: str) -> str:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import create_token

    with session_factory(settings.resolved_database_url)() as session:
        return create_token(session, f"t-{'-'.join(scopes)}", scopes)[1]


def test_non_loopback_bind_without_token_refuses_to_start(tunelab_home: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(Settings(home=tunelab_home, host="0.0.0.0"))
    assert "0.0.0.0" in caught.value.message and "tokens create" in caught.value.hint
    with pytest.raises(ConfigError):
        create_app(Settings(home=tunelab_home, require_token=True))


def test_tokens_and_scopes(tunelab_home: Path) -> None:
    settings = Settings(home=tunelab_home, host="0.0.0.0")
    read, train = _token(settings, "read"), _token(settings, "train")
    client = TestClient(create_app(settings))

    assert client.get("/api/health").status_code == 200  # load balancers need no token
    error = assert_error(client.get("/api/jobs"), 401, "unauthorized")
    assert "Bearer" in error["hint"]
    assert_error(client.get("/api/jobs", headers={"Authorization": "Bearer tl_wrong"}), 401, "unauthorized")
    assert_error(client.get("/api/jobs", headers={"Authorization": f"Basic {read}"}), 401, "unauthorized")
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {read}"}).status_code == 200
    forbidden = client.post("/api/jobs/job-x/cancel", headers={"Authorization": f"Bearer {read}"})
    assert "train" in assert_error(forbidden, 403, "forbidden")["message"]
    allowed = client.post("/api/jobs/job-x/cancel", headers={"Authorization": f"Bearer {train}"})
    assert_error(allowed, 404, "not_found")  # past auth, the job is unknown
    admin_only = client.post("/api/models/x/trust_remote_code", json={"allowed": True},
                             headers={"Authorization": f"Bearer {train}"})  # fmt: skip
    assert_error(admin_only, 403, "forbidden")
    assert_error(client.get("/api/jobs/job-x/stream", params={"token": "tl_wrong"}), 401, "unauthorized")
    assert_error(client.get("/api/jobs/job-x/stream", params={"token": read}), 404, "not_found")
    assert_error(client.get("/v1/fine_tuning/jobs"), 401, "unauthorized")


def test_revoked_token_is_refused(tunelab_home: Path) -> None:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import revoke_token

    settings = Settings(home=tunelab_home, require_token=True)
    secret = _token(settings, "read")
    extra = _token(settings, "admin")
    client = TestClient(create_app(settings))
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/jobs", headers=headers).status_code == 200
    with session_factory(settings.resolved_database_url)() as session:
        revoke_token(session, "t-read")
    assert_error(client.get("/api/jobs", headers=headers), 401, "unauthorized")
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {extra}"}).status_code == 200


def test_websocket_without_token_gets_error_message(tunelab_home: Path) -> None:
    settings = Settings(home=tunelab_home, require_token=True)
    _token(settings, "read")
    client = TestClient(create_app(settings))
    with client.websocket_connect("/ws/jobs/job-x") as ws:
        message = ws.receive_json()
    assert message["type"] == "error" and message["error"]["code"] == "unauthorized"


def test_tokens_stored_hashed(tunelab_home: Path) -> None:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import list_tokens

    settings = Settings(home=tunelab_home)
    secret = _token(settings, "read")
    with session_factory(settings.resolved_database_url)() as session:
        (row,) = list_tokens(session)
        assert row.token_hash != secret and len(row.token_hash) == 64
        assert "token_hash" not in row.to_dict()


def test_cors_only_for_configured_origins(tunelab_home: Path) -> None:
    client = TestClient(create_app(Settings(home=tunelab_home, cors_origins=["http://studio.local"])))
    ok = client.get("/api/health", headers={"Origin": "http://studio.local"})
    assert ok.headers.get("access-control-allow-origin") == "http://studio.local"
    other = client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    plain = TestClient(create_app(Settings(home=tunelab_home)))
    assert "access-control-allow-origin" not in plain.get("/api/health", headers={"Origin": "http://x"}).headers
