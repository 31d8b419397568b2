"""GET /api/meta answers each list from the module that owns it, needs a read token, and is
documented in the OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import Settings


def test_meta_answers_from_each_home(client: TestClient) -> None:
    from tunelab.api.uploads import ALLOWED_SUFFIXES
    from tunelab.datasets.formats import FORMATS
    from tunelab.datasets.readers import FILE_TYPES, SUFFIXES
    from tunelab.jobs.states import ACTIONS, TERMINAL, TRANSITIONS, JobStatus
    from tunelab.providers.registry import LOCAL_ONLY
    from tunelab.store.models import PRIORITIES
    from tunelab.training.config_docs import field_groups
    from tunelab.training.methods import METHODS

    response = client.get("/api/meta")
    assert response.status_code == 200, response.text
    meta = response.json()
    assert meta["job_statuses"] == [s.value for s in JobStatus]
    assert set(meta["terminal_statuses"]) == {s.value for s in TERMINAL}
    assert {k: set(v) for k, v in meta["transitions"].items()} == {
        s.value: {t.value for t in targets} for s, targets in TRANSITIONS.items()
    }
    assert {k: set(v) for k, v in meta["actions"].items()} == {
        name: {s.value for s in starts} for name, starts in ACTIONS.items()
    }
    assert meta["actions"]["retry"] == ["failed", "cancelled"]  # what retry_job accepts
    assert meta["priorities"] == ["high", "medium", "low"] and set(meta["priorities"]) == set(PRIORITIES)
    assert meta["default_priority"] == "medium"
    assert [f["name"] for f in meta["dataset_formats"]] == list(FORMATS)
    assert meta["dataset_formats"][0]["columns"] == [list(slot) for slot in FORMATS["preference"]]
    assert meta["file_types"] == list(FILE_TYPES)
    assert meta["file_suffixes"] == SUFFIXES and tuple(meta["file_suffixes"]) == ALLOWED_SUFFIXES
    assert meta["methods"] == [spec.as_dict() for spec in METHODS.values()]
    assert meta["field_groups"] == field_groups()
    assert meta["remote_refuses"] == LOCAL_ONLY and set(LOCAL_ONLY) == {"dataset_mix", "resume_from"}


def test_an_upload_with_any_listed_suffix_is_accepted(client: TestClient, tmp_path: Path) -> None:
    """The suffixes /api/meta lists are the ones uploads take: .ndjson is JSON lines too."""
    meta = client.get("/api/meta").json()
    assert meta["file_suffixes"][".ndjson"] == "jsonl"
    body = b'{"text": "one"}\n{"text": "two"}\n'
    answer = client.post("/api/datasets/preview", files={"file": ("rows.ndjson", body)})
    assert answer.status_code == 200, answer.text
    refused = client.post("/api/datasets/preview", files={"file": ("rows.xlsx", body)})
    error = assert_error(refused, 422, "invalid_input")
    assert ".ndjson" in error["hint"]


def test_meta_needs_a_read_token_when_tokens_are_required(tunelab_home: Path) -> None:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import create_token

    settings = Settings(home=tunelab_home, require_token=True)
    with session_factory(settings.resolved_database_url)() as session:
        _, read = create_token(session, "reader", ["read"])
    with TestClient(create_app(settings)) as client:
        assert_error(client.get("/api/meta"), 401, "unauthorized")
        assert client.get("/api/meta", headers={"Authorization": f"Bearer {read}"}).status_code == 200


def test_meta_is_documented_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    route = schema["paths"]["/api/meta"]["get"]
    assert route["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Meta"
    }
    meta = schema["components"]["schemas"]["Meta"]
    for name in ("job_statuses", "transitions", "actions", "dataset_formats", "file_suffixes",
                 "methods", "field_groups"):  # fmt: skip
        assert meta["properties"][name]["description"], name
    assert "default_learning_rate" in schema["components"]["schemas"]["Method"]["properties"]
