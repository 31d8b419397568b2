"""Threshold alerts and notification channels over the API, against a real local HTTP receiver and SMTP server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error
from tests.api.receivers import http_receiver, smtp_receiver

from tunelab.api import create_app
from tunelab.settings import Settings

RULES = ("cpu_percent", "memory_percent", "gpu_temp", "error_rate", "response_time")
GUIDE_DEFAULTS = {"cpu_percent": 90, "memory_percent": 85, "gpu_temp": 85, "error_rate": 5, "response_time": 2000}


@pytest.fixture
def settings(tunelab_home: Path) -> Settings:
    """The API fixtures' settings without the monitor loop: these tests check alerts at moments they choose."""
    return Settings(home=tunelab_home, monitor_interval_s=0)


def wait_until(read: Callable[[], Any], check: Callable[[Any], bool], timeout_s: float = 20.0) -> Any:
    """Poll ``read()`` until ``check`` holds (deliveries record their outcome just after sending)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if check(value) or time.monotonic() > deadline:
            assert check(value), value
            return value
        time.sleep(0.05)


def only(rule: str) -> dict[str, bool]:
    """An ``enabled`` map that checks just ``rule``, so other readings of a busy machine cannot interfere."""
    return {name: name == rule for name in RULES}


def test_thresholds_default_to_the_guide_and_follow_the_environment(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tunelab_home
) -> None:
    body = client.get("/api/alerts/thresholds").json()
    assert body["values"] == GUIDE_DEFAULTS
    assert {t["rule"]: t["source"] for t in body["thresholds"]} == dict.fromkeys(RULES, "settings")
    monkeypatch.setenv("TUNELAB_ALERT_CPU_PERCENT", "75")
    monkeypatch.setenv("TUNELAB_ALERT_RESPONSE_TIME", "500")
    with TestClient(create_app(Settings(home=tunelab_home))) as other:
        values = other.get("/api/alerts/thresholds").json()["values"]
    assert values["cpu_percent"] == 75 and values["response_time"] == 500


def test_crossed_threshold_fires_once_notifies_webhook_slack_email_then_resolves(client: TestClient) -> None:
    with http_receiver() as (base, hooks), smtp_receiver() as (smtp_port, mails):
        for channel in (
            {"name": "ops hook", "kind": "webhook", "url": f"{base}/hook"},
            {"name": "ops-slack", "kind": "slack", "url": f"{base}/slack"},
            {"name": "on call ✉", "kind": "email", "to": ["oncall@example.com", "ops@example.com"],
             "smtp_host": "127.0.0.1", "smtp_port": smtp_port},
        ):
            response = client.post("/api/notifications/channels", json=channel)
            assert response.status_code == 201, response.text
        put = client.put("/api/alerts/thresholds", json={"cpu_percent": 0, "enabled": only("cpu_percent")})
        assert put.status_code == 200, put.text
        assert put.json()["values"]["cpu_percent"] == 0

        fired = client.post("/api/alerts/check").json()["data"]
        assert [a["rule"] for a in fired] == ["cpu_percent"]
        alert = fired[0]
        assert alert["level"] == "warning" and alert["active"] and alert["threshold"] == 0
        assert alert["message"] == f"High CPU usage: {alert['value']:.1f}%"

        hook = hooks.wait_for(lambda item: item["path"] == "/hook")
        assert hook["headers"]["Content-Type"] == "application/json"
        assert hook["body"]["event"] == "alert" and hook["body"]["level"] == "warning"
        assert hook["body"]["data"]["id"] == alert["id"] and hook["body"]["message"] == alert["message"]
        slack = hooks.wait_for(lambda item: item["path"] == "/slack")["body"]
        assert alert["message"] in slack["text"]
        assert slack["blocks"][0]["type"] == "section" and slack["blocks"][0]["text"]["type"] == "mrkdwn"
        mail = mails.wait_for(lambda item: True)
        assert sorted(mail["rcpt_tos"]) == ["oncall@example.com", "ops@example.com"]
        assert mail["mail_from"] == "tunelab@localhost"
        assert "CPU usage" in mail["message"]["Subject"]
        assert alert["message"] in mail["message"].get_payload(decode=True).decode()

        # still crossed: the open alert is not raised or sent again
        assert client.post("/api/alerts/check").json()["data"] == []
        active = client.get("/api/alerts", params={"state": "active"}).json()
        assert active["active"] == 1 and [a["id"] for a in active["data"]] == [alert["id"]]
        channels = wait_until(lambda: [c for c in client.get("/api/notifications/channels").json()["data"]
                                       if c["last_sent_at"]], lambda got: len(got) == 3)
        assert all(c["last_error"] is None for c in channels), channels

        # the rule turned off: the alert is resolved and shows among the past ones
        client.put("/api/alerts/thresholds", json={"enabled": {"cpu_percent": False}})
        client.post("/api/alerts/check")
        past = client.get("/api/alerts", params={"state": "resolved"}).json()["data"]
        assert [a["id"] for a in past] == [alert["id"]] and past[0]["resolved_at"] and not past[0]["active"]
        assert client.get("/api/alerts", params={"state": "active"}).json()["active"] == 0
        assert len([h for h in hooks.items if h["path"] == "/hook"]) == 1


def test_the_embedded_monitor_loop_fires_on_its_own(client: TestClient, tunelab_home) -> None:
    with http_receiver() as (base, hooks):
        # configured first, through the fixture's app (its loop is off) ...
        client.post("/api/notifications/channels", json={"name": "hook", "kind": "webhook", "url": f"{base}/h",
                                                         "events": ["alert"]})
        client.put("/api/alerts/thresholds", json={"cpu_percent": 0, "enabled": only("cpu_percent")})
        # ... then a server whose loop ticks every 0.2 s finds the crossed threshold without being asked
        with TestClient(create_app(Settings(home=tunelab_home, monitor_interval_s=0.2))) as watched:
            hook = hooks.wait_for(lambda item: item["body"]["event"] == "alert")
            assert hook["body"]["data"]["rule"] == "cpu_percent"
            samples = watched.get("/api/resources/recent").json()["data"]
            assert any(s["worker_id"] == "monitor" for s in samples)


def test_api_response_time_rule_reads_the_middleware_window(client: TestClient) -> None:
    for _ in range(5):
        client.get("/api/health")
    client.put("/api/alerts/thresholds", json={"response_time": 0, "enabled": only("response_time")})
    fired = client.post("/api/alerts/check").json()["data"]
    assert [a["rule"] for a in fired] == ["response_time"]
    assert fired[0]["data"]["count"] >= 6 and fired[0]["value"] == fired[0]["data"]["p95_ms"] > 0
    assert fired[0]["message"].startswith("Slow API responses: p95")


def test_job_error_rate_rule(client: TestClient, make_job: Callable[[str], str]) -> None:
    client.put("/api/alerts/thresholds", json={"enabled": only("error_rate")})
    make_job("completed")
    assert client.post("/api/alerts/check").json()["data"] == []  # 0 % failed
    make_job("failed")
    make_job("cancelled")  # not counted
    fired = client.post("/api/alerts/check").json()["data"]
    assert [(a["rule"], a["value"], a["level"]) for a in fired] == [("error_rate", 50.0, "critical")]
    assert fired[0]["data"]["failed"] == 1 and fired[0]["data"]["ended"] == 2
    assert "1 of 2 jobs failed" in fired[0]["message"]


def test_a_failing_channel_reports_why_and_tests_reach_only_the_chosen_channel(client: TestClient) -> None:
    with http_receiver(status=500) as (bad, _), http_receiver() as (good, hooks):
        broken = client.post("/api/notifications/channels", json={"name": "b", "kind": "webhook", "url": bad}).json()
        fine = client.post("/api/notifications/channels", json={"name": "g", "kind": "slack", "url": good}).json()
        results = client.post("/api/notifications/test", json={"message": "hello"}).json()
        assert results["delivered"] == 1
        by_id = {r["channel_id"]: r for r in results["results"]}
        assert by_id[fine["id"]]["ok"] and not by_id[broken["id"]]["ok"]
        assert "HTTP 500" in by_id[broken["id"]]["error"]
        assert hooks.wait_for(lambda item: True)["body"]["text"] == "test notification: hello"
        listed = {c["id"]: c for c in client.get("/api/notifications/channels").json()["data"]}
        assert "HTTP 500" in listed[broken["id"]]["last_error"]
        one = client.post("/api/notifications/test", json={"channel_id": fine["id"]}).json()
        assert [r["channel_id"] for r in one["results"]] == [fine["id"]]
        assert client.delete(f"/api/notifications/channels/{broken['id']}").status_code == 204
        assert [c["id"] for c in client.get("/api/notifications/channels").json()["data"]] == [fine["id"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("PUT", "/api/alerts/thresholds", {"cpu_percent": 150}, 422, "invalid_input"),
        ("PUT", "/api/alerts/thresholds", {"cpu_percent": "lots"}, 422, "invalid_input"),
        ("PUT", "/api/alerts/thresholds", {"bogus": 1}, 422, "invalid_input"),
        ("PUT", "/api/alerts/thresholds", {"enabled": {"bogus": True}}, 422, "invalid_input"),
        ("POST", "/api/notifications/channels", {"name": "x", "kind": "webhook"}, 422, "invalid_input"),
        ("POST", "/api/notifications/channels", {"name": "x", "kind": "webhook", "url": "ftp://x"}, 422, "invalid_input"),
        ("POST", "/api/notifications/channels", {"name": "x", "kind": "email", "to": ["nope"]}, 422, "invalid_input"),
        ("POST", "/api/notifications/channels", {"name": "x", "kind": "pager", "url": "http://x"}, 422, "invalid_input"),
        ("POST", "/api/notifications/channels", {"name": "a\nb", "kind": "slack", "url": "http://x"}, 422, "invalid_input"),
        ("POST", "/api/notifications/channels", {"name": "x", "kind": "slack", "url": "http://x", "events": ["x"]},
         422, "invalid_input"),
        ("DELETE", "/api/notifications/channels/ch-missing", None, 404, "not_found"),
        ("POST", "/api/notifications/test", {"channel_id": "ch-missing"}, 404, "not_found"),
        ("GET", "/api/alerts?state=bogus", None, 422, "invalid_input"),
        ("GET", "/api/alerts?limit=0", None, 422, "invalid_input"),
    ],
)
def test_bad_input_answers_4xx_with_the_error_shape(
    client: TestClient, method: str, path: str, body: object, status: int, code: str
) -> None:
    assert_error(client.request(method, path, json=body), status, code)


def test_the_sdk_covers_alerts_channels_and_analytics(base_url: str) -> None:
    from tunelab.client import Client
    from tunelab.errors import TunelabError

    with http_receiver() as (hook_base, hooks), Client(base_url) as sdk:
        assert sdk.alert_thresholds()["values"] == GUIDE_DEFAULTS
        assert sdk.set_alert_thresholds(cpu_percent=0, enabled=only("cpu_percent"))["values"]["cpu_percent"] == 0
        channel = sdk.add_notification_channel("sdk hook", "webhook", url=f"{hook_base}/sdk", events=["alert"])
        assert sdk.notification_channels()["data"][0]["id"] == channel["id"]
        fired = sdk.check_alerts()["data"]
        assert [a["rule"] for a in fired] == ["cpu_percent"]
        assert hooks.wait_for(lambda item: item["path"] == "/sdk")["body"]["data"]["id"] == fired[0]["id"]
        assert sdk.alerts(state="active")["active"] == 1
        assert sdk.test_notification(channel["id"], "ping")["delivered"] == 1
        assert sdk.set_alert_thresholds(cpu_percent=None)["values"]["cpu_percent"] == 90  # back to the default
        sdk.remove_notification_channel(channel["id"])
        assert sdk.notification_channels()["count"] == 0
        assert sdk.analytics(days=3)["days"] == 3
        with pytest.raises(TunelabError) as caught:
            sdk.set_alert_thresholds(memory_percent=101)
        assert caught.value.code == "invalid_input"
