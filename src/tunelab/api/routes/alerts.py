"""Alerts, their thresholds, and notification channels (the guide's alert system).

Thin: the rules, evaluation and storage are ``tunelab.monitor.alerts``; the
channels and delivery are ``tunelab.monitor.notify``. Reading needs the read
scope; changing thresholds or channels and sending a test needs admin, since
a channel makes the server send requests and email to addresses it names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tunelab.api.deps import AdminScope, ReadScope, SessionDep, SettingsDep
from tunelab.api.schemas import Offset
from tunelab.jobs.names import check_name
from tunelab.monitor import alerts as alert_service
from tunelab.monitor import notify

router = APIRouter(tags=["alerts"])

Percent = Annotated[float | None, Field(ge=0, le=100)]


class AlertPublic(BaseModel):
    id: int = Field(description="Alert id, increasing.")
    rule: str = Field(description="cpu_percent, memory_percent, gpu_temp, error_rate or response_time.")
    label: str = Field(description="The rule in words.")
    level: str = Field(description="warning or critical.")
    message: str = Field(description='The guide\'s message, e.g. "High CPU usage: 93.4%".')
    value: float | None = Field(description="What was measured when the alert fired.")
    threshold: float | None = Field(description="The threshold it reached.")
    unit: str = Field(description="%, °C or ms.")
    data: dict[str, Any] = Field(description="Details (GPU index, failed and ended job counts, response-time summary...).")
    active: bool = Field(description="True until the value is back under the threshold.")
    created_at: str | None = Field(description="When it fired (UTC, ISO 8601).")
    resolved_at: str | None = Field(description="When it was resolved; null while active.")


class AlertsPublic(BaseModel):
    data: list[AlertPublic] = Field(description="Alerts, newest first.")
    count: int = Field(description="Alerts in this page.")
    total: int = Field(description="Alerts matching the filter.")
    active: int = Field(description="Alerts open now.")


class ThresholdPublic(BaseModel):
    rule: str = Field(description="Rule name, the key PUT takes.")
    label: str = Field(description="The rule in words.")
    value: float = Field(description="The threshold in effect; the rule fires at or above it.")
    default: float = Field(description="The settings' default (TUNELAB_ALERT_<RULE>).")
    enabled: bool = Field(description="Whether the rule is checked.")
    unit: str = Field(description="%, °C or ms.")
    level: str = Field(description="Level of the alert it raises.")
    description: str = Field(description="What is measured.")
    source: Literal["settings", "api"] = Field(description="api when set through PUT, else settings.")


class ThresholdsPublic(BaseModel):
    thresholds: list[ThresholdPublic] = Field(description="Every rule.")
    values: dict[str, float] = Field(description="rule -> threshold, the guide's `thresholds` dict.")
    interval_s: float = Field(description="Seconds between checks (TUNELAB_MONITOR_INTERVAL_S; 0 = off).")


class ThresholdsUpdate(BaseModel):
    """The guide's threshold names; each optional. null goes back to the default."""

    model_config = ConfigDict(extra="forbid")

    cpu_percent: Percent = Field(default=None, description="CPU use in percent (default 90).")
    memory_percent: Percent = Field(default=None, description="RAM use in percent (default 85).")
    gpu_temp: Annotated[float | None, Field(ge=0, le=200)] = Field(default=None, description="GPU °C (default 85).")
    error_rate: Percent = Field(default=None, description="Failed jobs in percent (default 5).")
    response_time: Annotated[float | None, Field(ge=0)] = Field(
        default=None, description="API p95 response time in ms (default 2000)."
    )
    enabled: dict[str, bool] | None = Field(default=None, description="Turn rules on or off: {rule: true|false}.")


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="A label, e.g. ops-slack.")
    kind: Literal["webhook", "slack", "email"] = Field(description="webhook (JSON POST), slack (incoming webhook) or email (SMTP).")
    url: str | None = Field(default=None, max_length=2000, description="webhook and slack: the URL to POST to.")
    to: list[str] | None = Field(default=None, max_length=50, description="email: recipient addresses.")
    smtp_host: str | None = Field(default=None, max_length=300, description="email: SMTP host (default TUNELAB_SMTP_HOST).")
    smtp_port: int | None = Field(default=None, ge=1, le=65535, description="email: SMTP port (default TUNELAB_SMTP_PORT).")
    events: list[Literal["alert", "job.completed", "job.failed"]] | None = Field(
        default=None, description="Events this channel gets; default all."
    )
    min_level: Literal["info", "warning", "critical"] = Field(
        default="info", description="Least level sent (job completion is info, failure warning, alerts warning or critical)."
    )
    enabled: bool = Field(default=True, description="Disabled channels get only tests.")


class ChannelPublic(BaseModel):
    id: str = Field(description="Channel id.")
    name: str = Field(description="Its label.")
    kind: str = Field(description="webhook, slack or email.")
    config: dict[str, Any] = Field(description="url, or to (+ smtp_host, smtp_port). No secrets are stored.")
    events: list[str] = Field(description="Events it gets.")
    min_level: str = Field(description="Least level sent.")
    enabled: bool = Field(description="Whether it gets alerts and job notifications.")
    created_at: str | None = Field(description="When it was added.")
    last_sent_at: str | None = Field(description="Last delivery attempt.")
    last_error: str | None = Field(description="Why the last delivery failed; null when it worked.")


class ChannelsPublic(BaseModel):
    data: list[ChannelPublic] = Field(description="Every channel.")
    count: int = Field(description="How many.")


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: str | None = Field(default=None, max_length=64, description="Only this channel; default every channel.")
    message: str = Field(default="Test notification from tunelab", max_length=2000, description="Text to send.")


class DeliveryResult(BaseModel):
    channel_id: str = Field(description="Channel id.")
    name: str = Field(description="Channel label.")
    kind: str = Field(description="webhook, slack or email.")
    ok: bool = Field(description="Delivered (HTTP 2xx/3xx, or SMTP accepted the message).")
    error: str | None = Field(description="Why not.")


class TestResults(BaseModel):
    results: list[DeliveryResult] = Field(description="One per channel tried.")
    delivered: int = Field(description="How many worked.")


@router.get("/api/alerts", response_model=AlertsPublic, summary="Current and past threshold alerts")
def list_alerts(
    session: SessionDep,
    _: ReadScope,
    state: Annotated[Literal["all", "active", "resolved"], Query(description="active, resolved or all.")] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows, total, active = alert_service.list_alerts(session, state=state, limit=limit, offset=offset)
    data = [alert_service.alert_dict(row) for row in rows]
    return {"data": data, "count": len(data), "total": total, "active": active}


def _thresholds(session: Any, settings: Any) -> dict[str, Any]:
    rows = alert_service.get_thresholds(session, settings)
    return {"thresholds": rows, "values": {r["rule"]: r["value"] for r in rows}, "interval_s": settings.monitor_interval_s}


@router.get("/api/alerts/thresholds", response_model=ThresholdsPublic, summary="Alert thresholds in effect")
def get_thresholds(session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    return _thresholds(session, settings)


@router.put("/api/alerts/thresholds", response_model=ThresholdsPublic, summary="Change alert thresholds")
def put_thresholds(
    body: ThresholdsUpdate, session: SessionDep, settings: SettingsDep, _: AdminScope
) -> dict[str, Any]:
    values = body.model_dump(exclude={"enabled"}, exclude_unset=True)
    alert_service.set_thresholds(session, settings, values, body.enabled)
    return _thresholds(session, settings)


@router.post("/api/alerts/check", response_model=AlertsPublic, summary="Check the thresholds now")
async def check_now(request: Request, _: AdminScope) -> dict[str, Any]:
    """One tick of the monitor loop now (sample, evaluate, notify); answers the alerts it fired."""
    state = request.app.state
    loop = getattr(state, "monitor", None) or alert_service.MonitorLoop(
        state.sessions, state.settings, state.response_times, interval_s=0
    )
    fired, _resolved = await run_in_threadpool(loop.run_once)
    return {"data": fired, "count": len(fired), "total": len(fired), "active": len(fired)}


@router.get("/api/notifications/channels", response_model=ChannelsPublic, summary="Notification channels")
def list_channels(session: SessionDep, _: AdminScope) -> dict[str, Any]:
    data = [notify.channel_dict(row) for row in notify.list_channels(session)]
    return {"data": data, "count": len(data)}


@router.post(
    "/api/notifications/channels", status_code=201, response_model=ChannelPublic, summary="Add a notification channel"
)
def create_channel(body: ChannelCreate, session: SessionDep, _: AdminScope) -> dict[str, Any]:
    check_name(body.name, "name")
    row = notify.create_channel(
        session,
        name=body.name,
        kind=body.kind,
        fields=body.model_dump(include={"url", "to", "smtp_host", "smtp_port"}),
        events=list(body.events) if body.events is not None else None,
        min_level=body.min_level,
        enabled=body.enabled,
    )
    return notify.channel_dict(row)


@router.delete(
    "/api/notifications/channels/{channel_id}", status_code=204, response_class=Response,
    summary="Remove a notification channel",
)
def delete_channel(channel_id: str, session: SessionDep, _: AdminScope) -> Response:
    notify.delete_channel(session, channel_id)
    return Response(status_code=204)


@router.post("/api/notifications/test", response_model=TestResults, summary="Send a test notification now")
async def test_notification(body: TestRequest, request: Request, settings: SettingsDep, _: AdminScope) -> dict[str, Any]:
    """Delivers synchronously (each channel within TUNELAB_NOTIFY_TIMEOUT_S) and reports each result."""
    note = {"event": "test", "level": "info", "title": "test notification", "message": body.message, "data": {}}
    results = await run_in_threadpool(
        notify.deliver_all, request.app.state.sessions, settings, note, body.channel_id
    )
    return {"results": results, "delivered": sum(1 for r in results if r["ok"])}
