"""Bearer-token authentication and scopes.

Tokens are required when the server binds anything but a loopback address, or
when ``TUNELAB_REQUIRE_TOKEN`` is set; otherwise a local caller without a token
acts as admin (the studio on your own laptop) and any token sent is ignored, so
clients that always send a key (the ``openai`` client) work against a local studio. Browsers cannot set headers on WebSocket/EventSource requests, so the
stream routes also accept ``?token=``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from tunelab.errors import ConfigError, Forbidden, Unauthorized
from tunelab.settings import Settings
from tunelab.store.tokens import list_tokens, verify_token

_IMPLIED = {"admin": {"admin", "train", "read"}, "train": {"train", "read"}, "read": {"read"}}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token (id, name) or the anonymous local user."""

    token_id: str | None
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)


LOCAL_ADMIN = Principal(None, "local", frozenset({"read", "train", "admin"}))


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    return settings.require_token or not is_loopback(settings.host)


def check_startup(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Refuse to serve beyond loopback (or with require_token) while no token exists."""
    if not auth_required(settings):
        return
    with sessions() as session:
        if any(row.revoked_at is None for row in list_tokens(session)):
            return
    where = f"host {settings.host}" if not is_loopback(settings.host) else "TUNELAB_REQUIRE_TOKEN=1"
    raise ConfigError(
        f"refusing to start with {where}: no API token exists, so anyone could use the API",
        "create one with `tunelab tokens create admin --scope admin`, or bind 127.0.0.1",
    )


def _bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "malformed Authorization header", "send 'Authorization: Bearer <token>'"
            )
        return value.strip()
    is_stream = conn.scope["type"] == "websocket" or conn.url.path.endswith("/stream")
    return conn.query_params.get("token") if is_stream else None


def principal(conn: HTTPConnection) -> Principal:
    """Resolve the caller once per request (cached on the connection state)."""
    cached = getattr(conn.state, "principal", None)
    if cached is not None:
        return cached
    if not auth_required(conn.app.state.settings):
        conn.state.principal = LOCAL_ADMIN
        return LOCAL_ADMIN
    token = _bearer(conn)
    if token is None:
        raise Unauthorized(
            "this server requires an API token",
            "send 'Authorization: Bearer <token>' (CLI/SDK: set TUNELAB_TOKEN); "
            "create one on the server with `tunelab tokens create NAME`",
        )
    with conn.app.state.sessions() as session:
        row = verify_token(session, token, "read")
        scopes = set().union(*(_IMPLIED.get(s, set()) for s in row.scopes))
        result = Principal(row.id, row.name, frozenset(scopes))
    conn.state.principal = result
    return result


def require_scope(scope: str) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency that demands ``scope`` (403 ``forbidden`` when the token lacks it).

    Async, so the local studio (no token needed) answers on the event loop
    without a hop to the request thread pool; a token's store lookup still
    runs in that pool.
    """

    async def dependency(conn: HTTPConnection) -> Principal:
        who = getattr(conn.state, "principal", None)
        if who is None:
            local = not auth_required(conn.app.state.settings)
            who = principal(conn) if local else await run_in_threadpool(principal, conn)
        if scope not in who.scopes:
            raise Forbidden(
                f"token '{who.name}' lacks the '{scope}' scope",
                f"create a token with `tunelab tokens create NAME --scope {scope}`",
            )
        return who

    dependency.__name__ = f"require_{scope}"
    return dependency
