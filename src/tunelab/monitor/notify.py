"""Notification channels: a generic webhook, a Slack incoming webhook, email over SMTP.

Alerts (``alerts.py``) and job endings (the worker's supervisor) hand a
notification, ``{event, level, title, message, data}``, to ``dispatch``, which
delivers it on a daemon thread to every enabled channel that takes that event
at that level. Each delivery has its own timeout (``TUNELAB_NOTIFY_TIMEOUT_S``)
and a failing channel only records ``last_error`` on its row: a notification
never blocks or fails the worker or the monitor loop.

What goes over the wire:

- ``webhook``: POST of the notification as JSON plus ``sent_at`` and ``source``;
- ``slack``: POST of Slack's incoming-webhook shape, ``{"text", "blocks"}``;
- ``email``: a plain-text message from ``TUNELAB_SMTP_FROM`` through
  ``TUNELAB_SMTP_HOST``/``PORT`` (or the channel's own host and port), with
  STARTTLS or implicit TLS and a login when the settings say so. The password
  comes only from the environment and is never stored.

The standard library's ``smtplib`` and httpx (already a dependency) suffice,
so no notification library is needed.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
import threading
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tunelab import __version__
from tunelab.errors import InvalidInput, NotFound
from tunelab.settings import Settings
from tunelab.store.models import NotificationChannel, iso, utcnow

log = logging.getLogger("tunelab.notify")

KINDS = ("webhook", "slack", "email")
EVENTS = ("alert", "job.completed", "job.failed")
LEVELS = ("info", "warning", "critical")


# -- channels in the store ------------------------------------------------------------


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInput(
            f"webhook url {url!r} is not an http(s) URL",
            hint="give the full URL, e.g. https://hooks.slack.com/services/...",
        )
    try:
        httpx.URL(url)
    except Exception as error:
        raise InvalidInput(f"webhook url {url!r} is malformed: {error}", hint="check the URL") from error
    return url


def _check_addresses(to: Any) -> list[str]:
    if isinstance(to, str):
        to = [part.strip() for part in to.split(",") if part.strip()]
    if not isinstance(to, list) or not to:
        raise InvalidInput("an email channel needs at least one address in 'to'", hint='e.g. "to": ["ops@example.com"]')
    for address in to:
        local, _, domain = str(address).rpartition("@")
        if not local or not domain or any(c.isspace() or ord(c) < 32 for c in str(address)):
            raise InvalidInput(f"{address!r} is not an email address", hint="use name@domain")
    return [str(a) for a in to]


def channel_config(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The stored config of a channel of ``kind``, validated (only the fields that kind uses)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown channel kind {kind!r}", hint=f"kinds are: {', '.join(KINDS)}")
    if kind in ("webhook", "slack"):
        return {"url": _check_url(fields.get("url"))}
    config: dict[str, Any] = {"to": _check_addresses(fields.get("to"))}
    if fields.get("smtp_host"):
        config["smtp_host"] = str(fields["smtp_host"])
    if fields.get("smtp_port"):
        port = fields["smtp_port"]
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidInput(f"smtp_port {port!r} is not a port number", hint="use 1 to 65535")
        config["smtp_port"] = port
    return config


def create_channel(
    session: Session,
    *,
    name: str,
    kind: str,
    fields: dict[str, Any],
    events: list[str] | None = None,
    min_level: str = "info",
    enabled: bool = True,
) -> NotificationChannel:
    """Validate and store a channel; ``events`` None means every event."""
    events = list(EVENTS) if events is None else events
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise InvalidInput(
            f"unknown or no events: {unknown or events}", hint=f"events are: {', '.join(EVENTS)}"
        )
    if min_level not in LEVELS:
        raise InvalidInput(f"unknown level {min_level!r}", hint=f"levels are: {', '.join(LEVELS)}")
    if not name.strip() or any(ord(c) < 32 for c in name):
        raise InvalidInput("a channel name must be printable text", hint="e.g. ops-slack")
    row = NotificationChannel(
        id=f"ch-{uuid.uuid4().hex[:12]}",
        name=name.strip(),
        kind=kind,
        config=channel_config(kind, fields),
        events=events,
        min_level=min_level,
        enabled=enabled,
    )
    session.add(row)
    session.commit()
    return row


def list_channels(session: Session) -> list[NotificationChannel]:
    return list(session.scalars(select(NotificationChannel).order_by(NotificationChannel.created_at)))


def get_channel(session: Session, channel_id: str) -> NotificationChannel:
    row = session.get(NotificationChannel, channel_id)
    if row is None:
        raise NotFound(f"no notification channel {channel_id!r}", hint="GET /api/notifications/channels lists them")
    return row


def delete_channel(session: Session, channel_id: str) -> None:
    session.delete(get_channel(session, channel_id))
    session.commit()


def channel_dict(row: NotificationChannel) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "config": row.config or {},
        "events": row.events or [],
        "min_level": row.min_level,
        "enabled": row.enabled,
        "created_at": iso(row.created_at),
        "last_sent_at": iso(row.last_sent_at),
        "last_error": row.last_error,
    }


# -- delivery ------------------------------------------------------------------------------


def _text(note: dict[str, Any]) -> str:
    return f"{note.get('title', 'tunelab')}: {note.get('message', '')}"


def slack_payload(note: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook body: ``text`` (the fallback) and a section block in mrkdwn."""
    return {
        "text": _text(note),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{note.get('title', 'tunelab')}*\n{note.get('message', '')}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"tunelab · {note.get('event')} · {note.get('level')}"}]},
        ],
    }


def webhook_payload(note: dict[str, Any]) -> dict[str, Any]:
    return {**note, "source": f"tunelab {__version__}", "sent_at": iso(utcnow())}


def email_message(note: dict[str, Any], sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"tunelab: {note.get('title', '')}"
    message["From"], message["To"] = sender, ", ".join(to)
    message["Date"], message["Message-ID"] = formatdate(localtime=False), make_msgid(domain="tunelab")
    lines = [note.get("message", ""), "", f"event: {note.get('event')}", f"level: {note.get('level')}"]
    lines += [f"{key}: {value}" for key, value in (note.get("data") or {}).items() if not isinstance(value, dict | list)]
    message.set_content("\n".join(lines) + "\n")
    return message


def _send_email(config: dict[str, Any], note: dict[str, Any], settings: Settings) -> None:
    host = config.get("smtp_host") or settings.smtp_host
    port = int(config.get("smtp_port") or settings.smtp_port)
    message = email_message(note, settings.smtp_from, list(config["to"]))
    timeout = settings.notify_timeout_s
    if settings.smtp_security == "ssl":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if settings.smtp_security == "starttls":
            server.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            server.login(settings.smtp_username, settings.smtp_password)
        server.send_message(message)


def deliver(channel: dict[str, Any], note: dict[str, Any], settings: Settings) -> None:
    """Send ``note`` to one channel (a ``channel_dict``); raises on failure."""
    kind, config = channel["kind"], channel["config"]
    if kind == "email":
        _send_email(config, note, settings)
        return
    body = slack_payload(note) if kind == "slack" else webhook_payload(note)
    response = httpx.post(config["url"], json=body, timeout=settings.notify_timeout_s)
    if response.status_code >= 400:
        raise RuntimeError(f"{kind} endpoint answered HTTP {response.status_code}: {response.text[:200]}")


def wants(channel: dict[str, Any], note: dict[str, Any]) -> bool:
    """Does this channel take this notification (enabled, event, level)? Tests always go."""
    if note.get("event") == "test":
        return True
    if not channel["enabled"] or note.get("event") not in (channel["events"] or EVENTS):
        return False
    level = note.get("level", "info")
    return LEVELS.index(level if level in LEVELS else "info") >= LEVELS.index(channel["min_level"])


def deliver_all(
    factory: sessionmaker[Session], settings: Settings, note: dict[str, Any], channel_id: str | None = None
) -> list[dict[str, Any]]:
    """Deliver to every channel that wants ``note`` (or just ``channel_id``); record each outcome."""
    with factory() as session:
        rows = [get_channel(session, channel_id)] if channel_id else list_channels(session)
        channels = [channel_dict(row) for row in rows]
    results = []
    for channel in channels:
        if not wants(channel, note):
            continue
        error: str | None = None
        try:
            deliver(channel, note, settings)
        except Exception as exc:  # any failure of the far side is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"[:1000]
            log.warning("notification to %s (%s) failed: %s", channel["name"], channel["kind"], error)
        results.append({"channel_id": channel["id"], "name": channel["name"], "kind": channel["kind"],
                        "ok": error is None, "error": error, "at": utcnow()})
    if results:
        _record_outcomes(factory, results)
    for result in results:
        result.pop("at")
    return results


def _record_outcomes(factory: sessionmaker[Session], results: list[dict[str, Any]]) -> None:
    """Each channel's last delivery, in one short write transaction (SQLite's lock taken at BEGIN).

    One commit per notification, not per channel, keeps this background writer
    out of the way of the worker's and the API's transactions.
    """
    from tunelab.store.db import immediate_session

    with contextlib.suppress(Exception), immediate_session(factory) as session:
        for result in results:
            row = session.get(NotificationChannel, result["channel_id"])
            if row is not None:
                row.last_sent_at, row.last_error = result["at"], result["error"]
        session.commit()


def dispatch(factory: sessionmaker[Session], settings: Settings, note: dict[str, Any]) -> threading.Thread:
    """Deliver ``note`` on a daemon thread (returned, so tests can join it); never raises."""

    def run() -> None:
        try:
            deliver_all(factory, settings, note)
        except Exception:
            log.exception("notifications for %s failed", note.get("event"))

    thread = threading.Thread(target=run, name="tunelab-notify", daemon=True)
    thread.start()
    return thread


def job_notification(job: dict[str, Any]) -> dict[str, Any]:
    """What channels are sent when a job completes or fails (``job`` is ``Job.to_dict()``)."""
    status = job.get("status")
    name = job.get("name") or job.get("id")
    config = job.get("config") or {}
    error = job.get("error") or {}
    if status == "completed":
        message = f"Job {name} ({job.get('id')}) completed"
    else:
        message = f"Job {name} ({job.get('id')}) failed: {error.get('message') or error.get('code') or 'unknown error'}"
    return {
        "event": f"job.{status}",
        "level": "info" if status == "completed" else "warning",
        "title": f"job {status}",
        "message": message,
        "data": {
            "job_id": job.get("id"),
            "name": job.get("name"),
            "status": status,
            "model": config.get("model") if isinstance(config.get("model"), str) else str(config.get("model")),
            "dataset": config.get("dataset") if isinstance(config.get("dataset"), str) else str(config.get("dataset")),
            "error": error or None,
            "finished_at": job.get("finished_at"),
        },
    }
