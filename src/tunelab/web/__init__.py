"""The dashboard: a static single-page app served beside the API.

There is deliberately no UI logic in Python. The page (``static/index.html``,
``app.css``, the ES modules ``app.js`` and ``js/``, and the chart library vendored
in ``vendor/``) talks only to the public REST API, the SSE job stream and the same
bearer-token auth as every other client, so the dashboard can do nothing the API
cannot, and the API stays the one place where rules live; the lists it shows
(statuses, moves, formats, file types, methods, field groups) come from
``GET /api/meta``.
This module only mounts the files at ``/ui`` (``/`` redirects there) with a
strict Content-Security-Policy: no inline script, no third-party origin, so
even a bug that let markup through could not run script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "/ui"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load (ETag makes that a 304) so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}


class DashboardFiles(StaticFiles):
    """``StaticFiles`` that adds the security and caching headers to every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui/`` and send ``/`` there.

    The files need no token (they hold no data); every call the page makes
    goes through the API's own auth, and a 401 makes the page ask for a token.
    """
    app.mount(UI_PATH, DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def dashboard_root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)
