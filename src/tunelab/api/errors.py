"""Every error the API answers has one shape: ``{"error": {"code", "message", "hint"}}``.

Handlers here turn ``TunelabError`` (status from ``errors.http_status``),
FastAPI's request validation errors (422 ``invalid_input`` naming the field),
unknown routes and methods (404/405) and unexpected exceptions (500, no
traceback leaked) into that shape, so clients parse one format only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab.errors import TunelabError, http_status

log = logging.getLogger("tunelab.api")

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "check the request syntax"),
    401: ("unauthorized", "send 'Authorization: Bearer <token>'; create one with `tunelab tokens create`"),
    403: ("forbidden", "use a token with the needed scope"),
    404: ("not_found", "check the URL; the API is listed at /docs"),
    405: ("method_not_allowed", "check the HTTP method; the API is listed at /docs"),
    413: ("payload_too_large", "send a smaller body"),
}


def error_body(code: str, message: str, hint: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape; ``details`` only when there is something to add."""
    inner: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    if details:
        inner["details"] = details
    return {"error": inner}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


async def _tunelab_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TunelabError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.hint, exc.details), status_code=http_status(exc)
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        field = _field_name(item.get("loc", ()))
        problems.append({"field": field, "problem": str(item.get("msg", "invalid"))})
    first = problems[0] if problems else {"field": "body", "problem": "invalid"}
    message = "; ".join(f"`{p['field']}`: {p['problem']}" for p in problems) or "invalid request"
    hint = f"fix the field `{first['field']}` ({first['problem']}); the schema is at /docs"
    return JSONResponse(
        error_body("invalid_input", message, hint, {"fields": problems}), status_code=422
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, hint = _HTTP_CODES.get(exc.status_code, ("http_error", "see the API docs at /docs"))
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    return JSONResponse(
        error_body(code, message, hint), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("internal_error", f"internal error: {type(exc).__name__}", "see the server log"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(TunelabError, _tunelab_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
