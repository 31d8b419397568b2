"""The dashboard's files are served at /ui with safe headers, need no token, and stay honest.

Fast checks without a browser: routes and headers, that the page inserts server
data only as text (no innerHTML / inline script), and that the packaged
TrainConfig schema still matches TrainConfig.
"""

from __future__ import annotations

import re
from pathlib import Path

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
    assert '<script type="module" src="app.js"></script>' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset, kind in (
        ("app.js", "javascript"),
        ("js/api.js", "javascript"),  # module scripts must be served as JavaScript
        ("js/pages/job.js", "javascript"),
        ("vendor/uPlot.esm.js", "javascript"),
        ("vendor/uPlot.min.css", "text/css"),
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


def _own_scripts() -> list[Path]:
    """The dashboard's own modules (the vendored chart library is checked by its authors)."""
    return [p for p in sorted(STATIC_DIR.rglob("*.js")) if "vendor" not in p.relative_to(STATIC_DIR).parts]


def test_the_page_never_inserts_markup() -> None:
    """Server data goes in as text; the HTML has no inline script or handler (the CSP forbids them)."""
    scripts = _own_scripts()
    assert len(scripts) > 10, scripts  # app.js and the modules under js/
    for path in scripts:
        script = path.read_text()
        for pattern in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert pattern not in script, (path.name, pattern)
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> in index.html"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler in index.html"


def test_no_list_the_api_owns_is_copied_into_the_page() -> None:
    """Statuses, formats, file suffixes, methods and field groups come from GET /api/meta: no
    array literal in the page's code holds three of one such list, no string three suffixes."""
    from tunelab.datasets.formats import FORMATS
    from tunelab.datasets.readers import SUFFIXES
    from tunelab.jobs.states import JobStatus
    from tunelab.models.categories import CATEGORIES, USE_CASES
    from tunelab.monitor.alerts import RULES
    from tunelab.monitor.notify import EVENTS, KINDS
    from tunelab.training.config import FIELD_GROUPS
    from tunelab.training.methods import METHODS

    owned = {
        "job statuses": {s.value for s in JobStatus},
        "dataset formats": set(FORMATS),
        "file types": set(SUFFIXES.values()),
        "methods": set(METHODS),
        "main fields": set(FIELD_GROUPS["main"]),
        "priorities": {"high", "medium", "low"},
        "model categories": set(CATEGORIES),
        "model use cases": set(USE_CASES),
        "alert rules": set(RULES),
        "notification kinds": set(KINDS),
        "notification events": set(EVENTS),
    }
    text = "\n".join(path.read_text() for path in _own_scripts())
    literals = re.findall(r"\[[^\[\]]*\]", text)
    assert len(literals) > 20  # the pattern does find the page's arrays
    for literal in literals:
        items = set(re.findall(r'"([^"\n]*)"', literal))
        for name, values in owned.items():
            assert len(items & values) < 3, (name, literal)
    for string in re.findall(r'"([^"\n]*)"', text):
        assert sum(suffix in string for suffix in SUFFIXES) < 3, string


def test_every_dashboard_file_is_packaged() -> None:
    """pyproject's package-data globs cover every file under web/static, vendor/ included."""
    import tomllib

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["tunelab"]
    package = STATIC_DIR.parents[1]
    packaged = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    files = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert files - packaged == set()
    assert (STATIC_DIR / "vendor" / "uPlot.LICENSE").is_file()
