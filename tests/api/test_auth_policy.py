"""Every route of the OpenAPI schema against the policy table in docs/api.md.

A server with tokens required is called on every operation with no token, a
wrong token and a token of each scope (read, train, admin). The lowest scope
that gets past authentication is the route's minimum scope, and it must be the
one docs/api.md's table ("Who may call what") names, so the docs and the code
cannot drift: a new route fails here until its row is added, a removed route
until its row goes, and a route whose guard changes until the table says so.

Arguments are dummies (unknown ids, empty bodies): the point is who gets past
authentication, so the answer after it is a 404 or a 422, never a 401 or 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SCOPES = ("read", "train", "admin")  # each implies the ones before it
LEVELS = ("none", *SCOPES)
METHODS = ("get", "post", "put", "patch", "delete")
_ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`\s*\|\s*(none|read|train|admin)\s*\|")


def policy_table(text: str) -> dict[tuple[str, str], str]:
    """``{(METHOD, path): minimum scope}`` from the rows between the auth-policy markers."""
    start, end = text.index("<!-- auth-policy:start -->"), text.index("<!-- auth-policy:end -->")
    table: dict[tuple[str, str], str] = {}
    for line in text[start:end].splitlines():
        match = _ROW.match(line.strip())
        if match:
            key = (match.group(1), match.group(2))
            assert key not in table, f"docs/api.md lists {key[0]} {key[1]} twice in the policy table"
            table[key] = match.group(3)
    return table


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def concrete_path(path: str, operation: dict[str, Any]) -> str:
    """The path with every parameter filled with a dummy of its type (an id nothing has)."""
    types = {p["name"]: (p.get("schema") or {}).get("type") for p in operation.get("parameters", [])
             if p.get("in") == "path"}  # fmt: skip
    return re.sub(r"\{([^}]+)\}", lambda m: "1" if types.get(m.group(1)) == "integer" else "no-such-thing", path)


@pytest.fixture
def walker(tunelab_home: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import create_token

    settings = Settings(home=tunelab_home, require_token=True, offline=True, monitor_interval_s=0)
    with session_factory(settings.resolved_database_url)() as session:
        tokens = {scope: create_token(session, f"walk-{scope}", [scope])[1] for scope in SCOPES}
    headers = {scope: {"Authorization": f"Bearer {secret}"} for scope, secret in tokens.items()}
    headers["none"] = {}
    headers["wrong"] = {"Authorization": "Bearer tl_not-a-real-token"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, headers


def call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> Any:
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.request(method, url, headers=headers, **body)


def observed_minimum(client: TestClient, headers: dict[str, dict[str, str]], method: str, url: str) -> str:
    """The lowest of none, read, train, admin whose call gets past authentication."""
    for level in LEVELS:
        if call(client, method, url, headers[level]).status_code not in (401, 403):
            return level
    return "refused to admin too"


def test_docs_table_parses() -> None:
    text = "<!-- auth-policy:start -->\n| GET | `/a/{id}` | read |\n| POST | `/b` | admin |\n<!-- auth-policy:end -->"
    assert policy_table(text) == {("GET", "/a/{id}"): "read", ("POST", "/b"): "admin"}
    with pytest.raises(AssertionError, match="twice"):
        policy_table(text.replace("| POST | `/b`", "| GET | `/a/{id}`"))


def test_every_route_matches_the_policy_table(walker: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, headers = walker
    table = policy_table(DOCS.read_text())
    schema = client.app.openapi()  # type: ignore[attr-defined]
    walked = list(operations(schema))
    assert len(walked) > 50
    missing = [f"| {m} | `{p}` | {observed_minimum(client, headers, m, concrete_path(p, op))} |"
               for m, p, op in walked if (m, p) not in table]  # fmt: skip
    assert not missing, (
        "routes missing from the policy table in docs/api.md (section 'Who may call what'); add these rows "
        "(the minimum scope shown is what the server does now: check it is what you meant):\n" + "\n".join(missing)
    )
    stale = sorted(set(table) - {(m, p) for m, p, _ in walked})
    assert not stale, f"the policy table in docs/api.md lists routes the API no longer has: {stale}"

    wrong = []
    for method, path, operation in walked:
        url, minimum = concrete_path(path, operation), table[(method, path)]
        for level in ("wrong", *LEVELS):
            response = call(client, method, url, headers[level])
            allowed = minimum == "none" or (level != "wrong" and LEVELS.index(level) >= LEVELS.index(minimum))
            if allowed:
                if response.status_code in (401, 403) or response.status_code >= 500:
                    wrong.append(f"{method} {path} with {level}: {response.status_code} {response.text[:200]}")
            elif level in ("wrong", "none"):
                assert_error(response, 401, "unauthorized")
            else:
                error = assert_error(response, 403, "forbidden")
                assert minimum in error["message"] or minimum in error["hint"], error
    assert not wrong, "answers that disagree with docs/api.md's policy table:\n" + "\n".join(wrong)


def test_unknown_route_message_names_the_table(walker: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    """What a new route's author sees: the row to add, with the scope the server enforces."""
    client, headers = walker
    assert observed_minimum(client, headers, "GET", "/api/jobs") == "read"
    assert observed_minimum(client, headers, "POST", "/api/jobs/no-such-thing/cancel") == "train"
    assert observed_minimum(client, headers, "POST", "/api/models/no-such-thing/trust_remote_code") == "admin"
    assert observed_minimum(client, headers, "GET", "/api/health") == "none"
