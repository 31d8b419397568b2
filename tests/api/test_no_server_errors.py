"""Hostile input answers 4xx in the one error shape, never 500 (issue 8, "No 500 on any input").

Each case is one the hostile-input probe found: integers past BIGINT, broken
multipart bodies, 10,000 nested brackets, a 500-character model name, NUL in
every kind of text (on SQLite and PostgreSQL), a 405 without ``Allow``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.api.schemas import MAX_ID
from tunelab.settings import Settings

BIG = 2**63


@pytest.mark.parametrize("url", [
    f"/api/jobs/{{job}}/events?after={BIG}",
    f"/api/jobs/{{job}}/artifacts/{BIG}",
    f"/api/jobs/{{job}}/artifacts/{MAX_ID + 1}",
    f"/api/datasets/x/rows?offset={BIG - 1}",
    f"/api/datasets?offset={BIG}",
    f"/api/jobs?offset={BIG}",
    f"/api/alerts?offset={BIG}",
    f"/api/jobs/{{job}}/stream?after={BIG}",
    "/v1/fine_tuning/jobs/{job}/events?after=" + "9" * 5000,
    "/v1/fine_tuning/jobs/{job}/events?after=²",
])  # fmt: skip
def test_integers_past_the_bound_are_422(client: TestClient, make_job: object, url: str) -> None:
    job = make_job("completed")  # type: ignore[operator]
    response = client.get(url.format(job=job))
    assert_error(response, 422, "invalid_input")


def test_sse_with_a_huge_cursor_is_refused_before_the_stream(client: TestClient, make_job: object) -> None:
    job = make_job("completed")  # type: ignore[operator]
    response = client.get(f"/api/jobs/{job}/stream", headers={"Last-Event-ID": str(BIG)})
    assert response.headers["content-type"].startswith("application/json")
    assert_error(response, 422, "invalid_input")


def test_integers_at_the_bound_are_accepted(client: TestClient, make_job: object) -> None:
    job = make_job("completed")  # type: ignore[operator]
    assert client.get(f"/api/jobs/{job}/events?after={MAX_ID}").json()["count"] == 0
    assert_error(client.get(f"/api/jobs/{job}/artifacts/{MAX_ID}"), 404, "not_found")


def test_multipart_with_the_wrong_boundary(client: TestClient) -> None:
    body = b'--real\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{}\r\n--real--\r\n'
    response = client.post("/api/datasets", content=body, headers={"content-type": "multipart/form-data; boundary=other"})
    assert_error(response, 422, "invalid_input")
    assert not list((client.app.state.settings.home / "uploads").glob("*"))  # type: ignore[attr-defined]


def test_multipart_with_a_5000_character_filename(client: TestClient) -> None:
    response = client.post("/api/datasets", files={"file": ("a" * 5000 + ".jsonl", b'{"text": "x"}\n')})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_json_of_ten_thousand_nested_brackets(client: TestClient) -> None:
    for route in ("/api/datasets", "/api/datasets/preview", "/api/preview-csv"):
        response = client.post(route, files={"file": ("deep.json", b"[" * 10_000 + b"]" * 10_000)})
        assert response.status_code in (200, 422), (route, response.text)
        text = json.dumps(response.json())
        assert "RecursionError" not in text and "internal_error" not in text


def test_a_500_character_model_name(client: TestClient) -> None:
    for name in ("a" * 500, "/" + "a" * 499, "org/" + "b" * 496, "~nobody-" + "x" * 300):
        response = client.get("/api/models/available", params={"name": name})
        assert response.status_code in (200, 422), response.text  # 422: a server path, refused
        if response.status_code == 200:
            assert response.json()["available"] is False
        info = client.get("/api/models/info", params={"name": name})
        assert info.status_code in (404, 422, 424), info.text


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.put("/api/jobs")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
    static = client.post("/ui/index.html")
    assert static.status_code == 405 and "GET" in static.headers["allow"]


def test_openapi_documents_the_error_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    answers = schema["paths"]["/api/jobs/{job_id}/pause"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422", "503"} <= set(answers)
    assert answers["422"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_client(request: pytest.FixtureRequest, tunelab_home: Path) -> Iterator[TestClient]:
    """The app on SQLite, or on the session's PostgreSQL (where NUL cannot be stored at all)."""
    url = ""
    if request.param == "postgres":
        from tunelab.store.db import init_db
        from tunelab.store.testing import clear_tables

        url = request.getfixturevalue("postgres_url")
        init_db(url)
        clear_tables(url)
    with TestClient(create_app(Settings(home=tunelab_home, database_url=url))) as test_client:
        yield test_client


def test_nul_in_any_text_is_422(any_db_client: TestClient, chat_file: Path) -> None:
    client = any_db_client
    for url in ("/api/jobs/a%00b", "/api/datasets/x%00", "/api/jobs?search=a%00", "/api/jobs?tag=%00",
                "/api/configurations?model=%00", "/api/models/check/a%00b"):  # fmt: skip
        assert_error(client.get(url), 422, "invalid_input")
    bodies = [
        {"name": "a\x00b", "configuration": {"model": "m", "dataset": "d"}},
        {"description": "a\x00b", "configuration": {"model": "m", "dataset": "d"}},
        {"tags": ["a\x00"], "configuration": {"model": "m", "dataset": "d"}},
    ]
    for body in bodies:
        response = client.post("/api/jobs", json=body)
        assert response.status_code == 422, (body, response.text)
    upload = client.post("/api/datasets", files={"file": ("c.jsonl", chat_file.read_bytes())},
                         data={"name": "ok", "description": "x\x00y"})  # fmt: skip
    assert_error(upload, 422, "invalid_input")
    assert client.get("/api/health").status_code == 200
