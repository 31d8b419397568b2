"""The FastAPI application factory.

``create_app(settings)`` upgrades the store schema, refuses to start on an
unsafe bind (no token while one is required), installs the error handlers,
CORS for the configured origins only and a request-size guard, and mounts one
router per resource. It starts no worker: ``tunelab serve`` does that, so the
API can restart while training goes on. It does start the monitor loop
(``tunelab.monitor.alerts.MonitorLoop``, every ``monitor_interval_s``) for the
app's lifetime, because the API response times that loop checks are measured
here, by ``ResponseTimer``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tunelab import __version__
from tunelab.api.auth import check_startup
from tunelab.api.errors import document_errors, error_body, install_error_handlers
from tunelab.api.shared_reads import (
    SharedReads,
    StoreVersion,
    WritesStartGenerations,
    watch_commits,
)
from tunelab.monitor.alerts import MonitorLoop, ResponseTimes
from tunelab.settings import Settings, get_settings

# JSON bodies are small; only upload routes may stream up to max_upload_bytes.
MAX_JSON_BYTES = 8 * 1024 * 1024
UPLOAD_PATHS = ("/api/datasets", "/api/datasets/preview", "/v1/files")
PREVIEW_PATH = "/api/preview-csv"  # the guide's preview: its own, smaller limit (preview_max_bytes)
MULTIPART_OVERHEAD = 64 * 1024


class BodySizeLimit:
    """Answer 413 early when ``Content-Length`` announces too large a body.

    Uploads are counted again while streaming (``uploads.py``), since a chunked
    body announces no length.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, preview_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.preview_max_bytes = preview_max_bytes or max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            path = scope["path"].rstrip("/")
            limit = (
                self.max_upload_bytes + MULTIPART_OVERHEAD if path in UPLOAD_PATHS else MAX_JSON_BYTES
            )
            if path == PREVIEW_PATH:
                limit = self.preview_max_bytes + MULTIPART_OVERHEAD
            if length is not None and length.isdigit() and int(length) > limit:
                await _send_413(send, int(length), limit, preview=path == PREVIEW_PATH,
                                file_limit=self.preview_max_bytes)  # fmt: skip
                return
        await self.app(scope, receive, send)


class RefuseNul:
    """Answer 422 to a URL whose path or query holds a NUL character (``%00``).

    No id, name or filter holds one, and PostgreSQL cannot even compare text
    with one, so it is refused here, for every route at once; text in bodies
    goes through ``jobs/names.py`` (``check_name``, ``check_text``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            query = scope.get("query_string", b"")
            where = "path" if "\x00" in scope["path"] else "query" if b"%00" in query or b"\x00" in query else None
            if where is not None and scope["type"] == "http":
                import json

                body = json.dumps(error_body(
                    "invalid_input", f"the URL {where} holds a NUL character (%00)",
                    "remove %00 from the URL; ids, names and filters never hold one",
                    {"fields": [{"field": where, "problem": "NUL character"}]},
                )).encode()  # fmt: skip
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 422, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            if where is not None:  # a WebSocket: refuse the handshake
                await send({"type": "websocket.close", "code": 4422})
                return
        await self.app(scope, receive, send)


class ResponseTimer:
    """Adds each HTTP request's time to first response byte to a rolling window (``ResponseTimes``).

    Time to the response start, not to the end of the body, so a long SSE
    stream or a large download counts as fast as its server was to answer.
    """

    def __init__(self, app: ASGIApp, window: ResponseTimes) -> None:
        self.app, self.window = app, window

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        async def timed_send(message: Any) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                self.window.add((time.perf_counter() - started) * 1000.0)
            await send(message)

        await self.app(scope, receive, timed_send)


async def _send_413(send: Send, length: int, limit: int, *, preview: bool = False, file_limit: int = 0) -> None:
    import json

    if preview:  # the guide's sentence, as the streamed check in uploads.py says it
        from tunelab.datasets.inspection import size_limit_sentence

        message = f"{size_limit_sentence(file_limit)} (request body of {length:,} bytes)"
        hint = f"send a file of at most {file_limit:,} bytes, or raise TUNELAB_PREVIEW_MAX_BYTES on the server"
    else:
        message = f"request body of {length} bytes exceeds the limit of {limit} bytes"
        hint = "send a smaller file, or raise TUNELAB_MAX_UPLOAD_BYTES on the server"
    body = json.dumps(error_body("payload_too_large", message, hint)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _document_errors_in_openapi(app: FastAPI) -> None:
    """``/openapi.json`` lists every operation's error answers (``api/errors.document_errors``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(app, generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, **fastapi_kwargs: Any) -> FastAPI:
    """Build the studio's API for ``settings`` (default: from the environment)."""
    from tunelab.api.routes import ROUTERS
    from tunelab.store.db import make_folder, session_factory
    from tunelab.web import mount_dashboard

    settings = settings or get_settings()
    for folder in (settings.home, settings.datasets_dir, settings.runs_dir):
        make_folder(folder)  # an unwritable home: one line with a hint, not a traceback
    sessions = session_factory(settings.resolved_database_url, role="api", settings=settings)  # its own pool
    check_startup(settings, sessions)
    response_times = ResponseTimes()
    outer_lifespan = fastapi_kwargs.pop("lifespan", None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = MonitorLoop(sessions, settings, response_times).start()
        app.state.monitor = loop
        try:
            if outer_lifespan is None:
                yield
            else:
                async with outer_lifespan(app):
                    yield
        finally:
            loop.stop()
            app.state.shared_reads.version.close()
            chat_models = getattr(app.state, "chat_models", None)
            if chat_models is not None:  # generations still running stop at their next token
                chat_models.cancel_all()

    app = FastAPI(
        lifespan=lifespan,
        title="tunelab",
        version=__version__,
        description="Self-hosted LLM fine-tuning studio: datasets, models, configurations, "
        "jobs with live streams, and OpenAI-style fine-tuning aliases.",
        **fastapi_kwargs,
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.response_times = response_times
    watch_commits()
    app.state.shared_reads = shared_reads = SharedReads(settings.read_cache_s, StoreVersion(settings.resolved_database_url))
    app.state.workers = []  # embedded workers (`tunelab serve` adds them); /api/health watches their loops
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_dashboard(app)  # static pages at /ui over this same API (tunelab.web)
    _document_errors_in_openapi(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            allow_credentials=False,
        )
    app.add_middleware(BodySizeLimit, max_upload_bytes=settings.max_upload_bytes,
                       preview_max_bytes=settings.preview_max_bytes)  # fmt: skip
    app.add_middleware(WritesStartGenerations, reads=shared_reads)
    app.add_middleware(RefuseNul)
    app.add_middleware(ResponseTimer, window=response_times)  # outermost: times every request
    return app
