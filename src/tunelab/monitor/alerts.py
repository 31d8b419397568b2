"""Threshold alerts: the rules, their thresholds, evaluation, and the monitor loop that runs them.

The five rules and their defaults are the users' guide's (CPU 90 %, memory
85 %, GPU 85 °C, job error rate 5 %, API response time 2,000 ms). Defaults
come from the settings (``TUNELAB_ALERT_*``); ``PUT /api/alerts/thresholds``
stores overrides in ``alert_thresholds``, so a change survives restarts and
every API process sees it.

A rule fires when its measured value reaches its threshold (``>=``) and no
alert for it is open; the alert stays open, and is not sent again, until the
value drops below the threshold, when it is resolved. So a condition that
lasts an hour is one alert and one notification.

The monitor loop runs in the API process (``create_app`` starts it when
``monitor_interval_s > 0``) because the API response times it checks are
measured there, by the middleware that feeds ``ResponseTimes``. Each tick it
takes a resource sample (stored with ``worker_id="monitor"``, so the system
page has a history even when no job runs), evaluates the rules, commits, and
hands new alerts to the notification channels (``notify.py``) on a
background thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import InvalidInput
from tunelab.monitor.resources import record_sample, sample_resources
from tunelab.settings import Settings
from tunelab.store.models import Alert, AlertThreshold, Job, ResourceSample, iso, utcnow

log = logging.getLogger("tunelab.monitor")

MONITOR_WORKER_ID = "monitor"
SAMPLE_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class Rule:
    """One threshold rule: what it measures, in which unit, how serious crossing it is."""

    name: str
    label: str
    unit: str
    level: str
    maximum: float | None
    description: str


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("cpu_percent", "CPU usage", "%", "warning", 100.0, "CPU use of the machine running the API."),
        Rule("memory_percent", "Memory usage", "%", "critical", 100.0, "RAM in use (total minus available)."),
        Rule("gpu_temp", "GPU temperature", "°C", "critical", 200.0, "Hottest GPU reported by NVML."),
        Rule("error_rate", "Job error rate", "%", "critical", 100.0,
             "Failed jobs among the jobs that completed or failed in the window (TUNELAB_ALERT_ERROR_RATE_WINDOW_S)."),
        Rule("response_time", "API response time", "ms", "warning", None,
             "95th percentile of the API's time to first response byte over the last 5 minutes."),
    )
}


class ResponseTimes:
    """A rolling window of API response times in milliseconds (thread-safe).

    The API middleware adds one value per HTTP request; the monitor loop reads
    the 95th percentile. Old values fall out after ``window_s`` seconds, and at
    most ``max_items`` are kept, so memory stays bounded under load.
    """

    def __init__(self, window_s: float = 300.0, max_items: int = 5000) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, float]] = deque(maxlen=max_items)
        self._lock = threading.Lock()

    def add(self, milliseconds: float) -> None:
        with self._lock:
            self._items.append((time.monotonic(), milliseconds))

    def values(self) -> list[float]:
        cutoff = time.monotonic() - self.window_s
        with self._lock:
            while self._items and self._items[0][0] < cutoff:
                self._items.popleft()
            return [ms for _, ms in self._items]

    def summary(self) -> dict[str, Any]:
        """Count, mean, p95 and max over the window (None without requests)."""
        values = sorted(self.values())
        if not values:
            return {"count": 0, "mean_ms": None, "p95_ms": None, "max_ms": None}
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return {
            "count": len(values),
            "mean_ms": round(sum(values) / len(values), 2),
            "p95_ms": round(p95, 2),
            "max_ms": round(values[-1], 2),
        }


# -- thresholds ------------------------------------------------------------------


def _default(settings: Settings, rule: str) -> float:
    return float(getattr(settings, f"alert_{rule}"))


def get_thresholds(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Every rule with its effective threshold: the stored override, else the settings' default."""
    stored = {row.rule: row for row in session.scalars(select(AlertThreshold))}
    out = []
    for name, rule in RULES.items():
        row = stored.get(name)
        out.append(
            {
                "rule": name,
                "label": rule.label,
                "value": row.value if row else _default(settings, name),
                "default": _default(settings, name),
                "enabled": row.enabled if row else True,
                "unit": rule.unit,
                "level": rule.level,
                "description": rule.description,
                "source": "api" if row else "settings",
            }
        )
    return out


def set_thresholds(
    session: Session,
    settings: Settings,
    values: dict[str, float | None],
    enabled: dict[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """Store new thresholds (a value of None goes back to the default); returns all of them."""
    enabled = enabled or {}
    for name in [*values, *enabled]:
        if name not in RULES:
            raise InvalidInput(
                f"unknown alert rule {name!r}", hint=f"rules are: {', '.join(RULES)}"
            )
    for name, value in values.items():
        rule = RULES[name]
        if value is not None and (value < 0 or (rule.maximum is not None and value > rule.maximum)):
            top = f"{rule.maximum:g}" if rule.maximum is not None else "any"
            raise InvalidInput(
                f"threshold {value:g} for {name} is out of range",
                hint=f"{name} takes 0 to {top} ({rule.unit})",
            )
    for name in {*values, *enabled}:
        row = session.get(AlertThreshold, name)
        value = values.get(name, row.value if row else _default(settings, name))
        is_enabled = enabled.get(name, row.enabled if row else True)
        if value is None and is_enabled:
            if row is not None:
                session.delete(row)
            continue
        value = _default(settings, name) if value is None else float(value)
        if row is None:
            session.add(AlertThreshold(rule=name, value=value, enabled=is_enabled))
        else:
            row.value, row.enabled = value, is_enabled
    session.commit()
    return get_thresholds(session, settings)


# -- measurement and evaluation --------------------------------------------------------


def job_error_rate(session: Session, window_s: float) -> tuple[float | None, dict[str, Any]]:
    """Percent of failed jobs among those that completed or failed in the last ``window_s`` seconds."""
    since = utcnow() - timedelta(seconds=window_s)
    rows = session.execute(
        select(Job.status, func.count())
        .where(Job.finished_at >= since, Job.status.in_(("completed", "failed")))
        .group_by(Job.status)
    ).all()
    counts = {status: int(count) for status, count in rows}
    ended = counts.get("completed", 0) + counts.get("failed", 0)
    data = {"failed": counts.get("failed", 0), "ended": ended, "window_s": window_s}
    return (round(100.0 * counts.get("failed", 0) / ended, 2) if ended else None), data


def measure(
    session: Session, settings: Settings, sample: dict[str, Any], response_times: ResponseTimes | None
) -> dict[str, tuple[float | None, dict[str, Any]]]:
    """Each rule's current value (None where it cannot be measured now) and its details."""
    hot = [g for g in sample.get("gpus") or [] if g.get("temperature_c") is not None]
    hottest = max(hot, key=lambda g: g["temperature_c"]) if hot else None
    ram_percent = sample.get("ram_percent")
    if ram_percent is None and sample.get("ram_total"):
        ram_percent = round(100.0 * sample["ram_used"] / sample["ram_total"], 2)
    times = response_times.summary() if response_times else {"count": 0, "p95_ms": None}
    error_rate, error_data = job_error_rate(session, settings.alert_error_rate_window_s)
    return {
        "cpu_percent": (sample.get("cpu_percent"), {"cores": sample.get("cpu_count")}),
        "memory_percent": (ram_percent, {"used": sample.get("ram_used"), "total": sample.get("ram_total")}),
        "gpu_temp": (
            hottest["temperature_c"] if hottest else None,
            {"gpu": hottest["index"], "name": hottest.get("name")} if hottest else {},
        ),
        "error_rate": (error_rate, error_data),
        "response_time": (times.get("p95_ms"), times),
    }


def _message(rule: Rule, value: float, data: dict[str, Any]) -> str:
    if rule.name == "cpu_percent":
        return f"High CPU usage: {value:.1f}%"
    if rule.name == "memory_percent":
        return f"High memory usage: {value:.1f}%"
    if rule.name == "gpu_temp":
        return f"GPU {data.get('gpu')} overheating: {value:.0f}°C"
    if rule.name == "error_rate":
        return f"High job error rate: {value:.1f}% ({data.get('failed')} of {data.get('ended')} jobs failed)"
    return f"Slow API responses: p95 {value:.0f} ms"


def evaluate(
    session: Session,
    settings: Settings,
    sample: dict[str, Any],
    response_times: ResponseTimes | None = None,
) -> tuple[list[Alert], list[Alert]]:
    """Open alerts for rules newly crossed, resolve those back under; returns (fired, resolved).

    Flushes, does not commit: the caller commits and then notifies.
    """
    values = measure(session, settings, sample, response_times)
    open_rows = {row.rule: row for row in session.scalars(select(Alert).where(Alert.resolved_at.is_(None)))}
    fired: list[Alert] = []
    resolved: list[Alert] = []
    for threshold in get_thresholds(session, settings):
        name = threshold["rule"]
        value, data = values[name]
        current = open_rows.get(name)
        if not threshold["enabled"]:
            crossed = False
        elif value is None:
            continue  # nothing measured (no GPU, no requests yet): leave an open alert open
        else:
            crossed = value >= threshold["value"]
        if crossed and current is None:
            rule = RULES[name]
            row = Alert(
                rule=name,
                level=rule.level,
                message=_message(rule, float(value), data),  # type: ignore[arg-type]
                value=float(value),  # type: ignore[arg-type]
                threshold=float(threshold["value"]),
                data=data,
            )
            session.add(row)
            fired.append(row)
        elif not crossed and current is not None:
            current.resolved_at = utcnow()
            current.data = {**(current.data or {}), "resolved_value": value}
            resolved.append(current)
    session.flush()
    return fired, resolved


# -- reading alerts ------------------------------------------------------------------------


def alert_dict(row: Alert) -> dict[str, Any]:
    """The API's shape of an alert: the guide's ``level`` and ``message`` plus what was measured."""
    rule = RULES.get(row.rule)
    return {
        "id": row.id,
        "rule": row.rule,
        "label": rule.label if rule else row.rule,
        "level": row.level,
        "message": row.message,
        "value": row.value,
        "threshold": row.threshold,
        "unit": rule.unit if rule else "",
        "data": row.data or {},
        "active": row.resolved_at is None,
        "created_at": iso(row.created_at),
        "resolved_at": iso(row.resolved_at),
    }


def list_alerts(
    session: Session, *, state: str = "all", limit: int = 100, offset: int = 0
) -> tuple[list[Alert], int, int]:
    """Alerts newest first, filtered by ``state`` (active, resolved, all); returns (rows, total, active)."""
    if state not in ("all", "active", "resolved"):
        raise InvalidInput(f"unknown alert state {state!r}", hint="use active, resolved or all")
    query = select(Alert)
    if state == "active":
        query = query.where(Alert.resolved_at.is_(None))
    elif state == "resolved":
        query = query.where(Alert.resolved_at.is_not(None))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    active = int(session.scalar(select(func.count()).where(Alert.resolved_at.is_(None))) or 0)
    rows = list(session.scalars(query.order_by(Alert.id.desc()).limit(limit).offset(offset)))
    return rows, total, active


def alert_notification(row: Alert) -> dict[str, Any]:
    """What a channel is sent for a fired alert."""
    return {
        "event": "alert",
        "level": row.level,
        "title": f"[{row.level}] {RULES[row.rule].label if row.rule in RULES else row.rule}",
        "message": row.message,
        "data": alert_dict(row),
    }


# -- the loop ---------------------------------------------------------------------------------


class MonitorLoop:
    """Sample, evaluate, notify every ``interval_s`` seconds on a daemon thread."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        response_times: ResponseTimes | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.factory, self.settings, self.response_times = factory, settings, response_times
        self.interval_s = settings.monitor_interval_s if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deliveries: list[threading.Thread] = []

    def run_once(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """One tick; returns (fired, resolved) alerts as dicts. Notifications go out in the background."""
        from tunelab.monitor.notify import dispatch

        sample = sample_resources(self.settings.home)
        with self.factory() as session:
            record_sample(session, sample, worker_id=MONITOR_WORKER_ID)
            session.execute(
                delete(ResourceSample).where(
                    ResourceSample.worker_id == MONITOR_WORKER_ID,
                    ResourceSample.created_at < utcnow() - SAMPLE_RETENTION,
                )
            )
            fired, resolved = evaluate(session, self.settings, sample, self.response_times)
            session.commit()
            notes = [alert_notification(row) for row in fired]
            out = [alert_dict(row) for row in fired], [alert_dict(row) for row in resolved]
        for note in notes:
            log.warning("alert: %s", note["message"])
            self.deliveries.append(dispatch(self.factory, self.settings, note))
        self.deliveries = [t for t in self.deliveries if t.is_alive()]
        return out

    def _run(self) -> None:
        sample_resources(self.settings.home)  # primes the CPU percent and the I/O rates
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # a failed tick (database busy, sensor error) must not end the loop
                log.exception("monitor tick failed")

    def start(self) -> MonitorLoop:
        if self.interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tunelab-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
