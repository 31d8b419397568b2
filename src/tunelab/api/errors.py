"""Every error the API answers has one shape: ``{"error": {"code", "message", "hint"}}``.

Handlers here turn ``TunelabError`` (status from ``errors.http_status``),
FastAPI's request validation errors (422 ``invalid_input`` naming the field),
unknown routes and methods (404/405, the 405 with ``Allow`` listing every method
the path takes), data the database refuses (422) and unexpected exceptions (500,
no traceback leaked) into that shape, so clients parse one format only.

A transient store error (no pooled connection free within
``api_pool_timeout_s``, a locked or full database, a dropped link) is a 503
``database_busy`` / ``database_unavailable`` with ``Retry-After``, as is every
503: the request failed fast and the client should simply try again.

``document_errors`` writes the same shape into the OpenAPI document: every
operation lists the 4xx/503 answers it can give (401/403 where a token scope is
checked, 404 where it names something, 409 where it changes state, 413 where it
takes a body, 422 where it takes input, 503 where it opens the store), so a
client, or schemathesis, finds every status it can meet documented.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab.errors import TunelabError, http_status
from tunelab.store.retry import TRANSIENT_ERRORS, describe, user_error

log = logging.getLogger("tunelab.api")
RETRY_AFTER_S = 1  # seconds a client waits before retrying a 503

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "check the request syntax"),
    401: ("unauthorized", "send 'Authorization: Bearer <token>'; create one with `tunelab tokens create`"),
    403: ("forbidden", "use a token with the needed scope"),
    404: ("not_found", "check the URL; the API is listed at /docs"),
    405: ("method_not_allowed", "check the HTTP method; the API is listed at /docs"),
    413: ("payload_too_large", "send a smaller body"),
}


class ErrorDetail(BaseModel):
    """What went wrong and how to fix it."""

    code: str = Field(description="Stable error code, e.g. not_found, invalid_input, conflict.")
    message: str = Field(description="What was wrong.")
    hint: str = Field(description="How to fix it.")
    details: dict[str, Any] | None = Field(default=None, description="Fields, limits or allowed states.")


class ErrorBody(BaseModel):
    """The one error shape of every answer that is not a success."""

    error: ErrorDetail


#: Status -> description, for the OpenAPI document.
ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request (bad syntax, a broken multipart body).",
    401: "No token, or an unknown one.",
    403: "The token lacks the needed scope.",
    404: "Nothing of that id or name.",
    409: "The target's state does not allow it (the allowed states are in `details`).",
    413: "The body is larger than the server accepts.",
    422: "A field is invalid (named in `details.fields`).",
    424: "The model is not available on this server.",
    503: "The database is unavailable or busy; retry after `Retry-After` seconds.",
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


def _error_response(exc: TunelabError) -> JSONResponse:
    status = http_status(exc)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse(
        error_body(exc.code, exc.message, exc.hint, exc.details), status_code=status, headers=headers
    )


async def _tunelab_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TunelabError)
    return _error_response(exc)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    """A transient store error (more specific than ``StatementError``, so it wins): 503, retry."""
    log.warning("%s %s: store unavailable: %s", request.method, request.url.path, describe(exc))
    return _error_response(user_error(exc))


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


def allowed_methods(request: Request) -> list[str]:
    """Every method some route (or mounted app) takes at this request's path, for ``Allow``.

    Starlette names only the first route that matched the path, and static
    mounts name none; a 405 must list them all (RFC 9110).
    """
    from fastapi import routing

    path = request.scope["path"]
    walk = getattr(routing, "iter_route_contexts", None)
    routes = list(walk(request.app.routes)) if walk is not None else request.app.routes
    methods: set[str] = set()
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or {"GET", "HEAD"})
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, hint = _HTTP_CODES.get(exc.status_code, ("http_error", "see the API docs at /docs"))
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
        hint = f"this path takes {headers['Allow']}; the API is listed at /docs"
    return JSONResponse(error_body(code, message, hint), status_code=exc.status_code, headers=headers)


async def _data_error(_: Request, exc: Exception) -> JSONResponse:
    """Input the database refuses (NUL in text on PostgreSQL, a value too long for its column): 422.

    The request checks (``jobs/names.py``) catch these first with the field's
    name; this is the backstop, so no such input ever becomes a 500.
    """
    assert isinstance(exc, StatementError)
    original = getattr(exc, "orig", None)
    if not isinstance(exc, DataError) and not isinstance(original, ValueError):
        return await _unexpected(_, exc)
    reason = str(original or exc).splitlines()[0][:300]
    return JSONResponse(
        error_body("invalid_input", f"the database refused a value: {reason}",
                   "remove NUL and control characters and shorten long values"),
        status_code=422,
    )  # fmt: skip


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
    for error_type in TRANSIENT_ERRORS:
        app.add_exception_handler(error_type, _store_error)
    app.add_exception_handler(StatementError, _data_error)
    app.add_exception_handler(Exception, _unexpected)


_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Routes whose answers name a model that may be missing or not convertible here (424).
_MODEL_PREFIXES = ("/api/models", "/v1/chat", "/api/jobs", "/v1/fine_tuning", "/api/configurations")


def _dependency_calls(dependant: Any) -> list[Any]:
    calls = []
    for sub in dependant.dependencies:
        calls.append(sub.call)
        calls.extend(_dependency_calls(sub))
    return calls


def operation_errors(route: Any, method: str) -> set[int]:
    """The error statuses one operation can answer, from what the route takes and does."""
    from tunelab.api.deps import get_session

    dependant = route.dependant
    calls = _dependency_calls(dependant)
    codes: set[int] = set()
    if any(getattr(call, "__qualname__", "").startswith("require_scope.") for call in calls):
        codes |= {401, 403, 503}  # tokens are looked up in the store
    if get_session in calls:
        codes.add(503)
    upload = "requestBody" in (route.openapi_extra or {})
    inputs = dependant.path_params or dependant.query_params or dependant.header_params or dependant.body_params
    if inputs or upload:
        codes.add(422)
    if inputs or upload:
        codes.add(404)  # ids and names in the path, the query or the body name things that may not exist
    if dependant.body_params:
        codes.add(400)  # a body that is not JSON at all
    if method in _MUTATING:
        codes |= {404, 409, 413}
    if upload:
        codes |= {400, 413}
    if route.path_format.startswith(_MODEL_PREFIXES) and codes:
        codes.add(424)
    return codes


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route of ``app`` as the OpenAPI generator sees it.

    FastAPI 0.16x keeps included routers as one entry each and walks them with
    ``iter_route_contexts``; older versions list the routes themselves.
    """
    from fastapi import routing

    walk = getattr(routing, "iter_route_contexts", None)
    if walk is None:
        return [route for route in app.routes if isinstance(route, routing.APIRoute)]
    return [context for context in walk(app.routes) if isinstance(context.original_route, routing.APIRoute)]


def document_errors(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers (``ErrorBody``) each operation can give to an OpenAPI document, in place.

    FastAPI's own 422 (``HTTPValidationError``) is replaced: this API answers
    validation errors in the one error shape too. Answers a route declares
    itself are kept.
    """
    found = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(found.pop("$defs", {}))
    components["ErrorBody"] = found
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        for method in set(route.methods or ()) - {"HEAD"}:
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            answers = operation.setdefault("responses", {})
            declared = route.responses or {}
            for code in sorted(operation_errors(route, method)):
                if code in declared or str(code) in declared:
                    continue
                answers[str(code)] = {"description": ERROR_STATUSES[code], "content": ref}
    import json

    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unused
            components.pop(name, None)
    return schema
