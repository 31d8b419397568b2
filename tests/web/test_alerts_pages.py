"""The alerts and analytics pages in chromium, against the real API, a real webhook receiver and real jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import chat_file, make_job, sessions
from tests.api.receivers import http_receiver
from tests.web.browser import studio

from tunelab.settings import Settings

__all__ = ["chat_file", "make_job", "sessions"]

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def settings(tunelab_home: Path) -> Settings:
    """The API fixtures' settings without the monitor loop: these tests check alerts at moments they choose."""
    return Settings(home=tunelab_home, monitor_interval_s=0)


def test_alerts_page_sets_thresholds_adds_a_channel_and_shows_the_alert(settings: Settings, page: Any) -> None:
    with http_receiver() as (hook_base, hooks), studio(settings) as url:
        page.goto(f"{url}/ui/#/alerts")
        expect(page.get_by_text("No active alerts.")).to_be_visible()
        form = page.get_by_role("form", name="Alert thresholds")
        expect(form.get_by_label("CPU usage (%)")).to_have_value("90")  # the guide's default, from the API
        form.get_by_label("CPU usage (%)").fill("0")
        for rule in ("memory usage", "gpu temperature", "job error rate", "api response time"):
            form.get_by_label(f"check {rule}").uncheck()
        form.get_by_role("button", name="Save thresholds").click()
        expect(page.get_by_role("status", name="Thresholds saved")).to_have_text("Saved.")
        expect(form.get_by_label("CPU usage (%)")).to_have_value("0")  # drawn again from the server's answer
        thresholds = httpx.get(f"{url}/api/alerts/thresholds").json()
        assert thresholds["values"]["cpu_percent"] == 0
        assert [t["rule"] for t in thresholds["thresholds"] if t["enabled"]] == ["cpu_percent"]

        add = page.get_by_role("form", name="Add a notification channel")
        add.get_by_label("Channel name").fill("ops hook")
        add.get_by_label("Kind").select_option("webhook")
        add.get_by_label("URL").fill(f"{hook_base}/hook")
        add.get_by_role("button", name="Add channel").click()
        channels = page.get_by_role("table", name="Notification channels")
        expect(channels.get_by_text(f"{hook_base}/hook")).to_be_visible()

        page.get_by_role("button", name="Check now").click()
        expect(page.get_by_text("Checked now: 1 new alert(s).")).to_be_visible()
        active = page.get_by_role("table", name="Active alerts")
        expect(active.locator("tr[data-rule=cpu_percent]")).to_contain_text("High CPU usage")
        fired = httpx.get(f"{url}/api/alerts?state=active").json()["data"][0]
        expect(active.locator(f"tr[data-alert='{fired['id']}']")).to_contain_text(fired["message"])
        assert hooks.wait_for(lambda item: item["body"]["event"] == "alert")["body"]["data"]["id"] == fired["id"]

        page.get_by_role("button", name="Test ops hook").click()
        expect(page.get_by_text("Test sent: 1 of 1 delivered.")).to_be_visible()
        hooks.wait_for(lambda item: item["body"]["event"] == "test")
        page.get_by_role("button", name="Remove ops hook").click()
        expect(page.get_by_text("No channels yet: alerts show here only.")).to_be_visible()
        assert httpx.get(f"{url}/api/notifications/channels").json()["count"] == 0


def test_analytics_page_shows_the_apis_numbers(
    settings: Settings, page: Any, make_job: Callable[[str], str]
) -> None:
    for status in ("completed", "completed", "failed", "queued"):
        make_job(status)
    with studio(settings) as url:
        numbers = httpx.get(f"{url}/api/analytics?days=30").json()
        assert numbers["totals"]["jobs"] == 4 and numbers["success_rate"] == 66.67
        page.goto(f"{url}/ui/#/analytics")
        summary = page.get_by_role("definition").filter(has_text="%")
        expect(summary).to_have_text("66.67%")
        expect(page.locator(".stat", has_text="Completed / failed / cancelled")).to_contain_text("2 / 1 / 0")
        chart = page.get_by_role("figure", name="Jobs per day")
        expect(chart).to_have_attribute("data-points", str(3 * 30))
        expect(chart.locator(".uplot canvas")).to_have_count(1)
        models = page.get_by_role("table", name="Popular models")
        expect(models).to_contain_text("tiny-model")
        expect(models.locator("tbody tr")).to_have_count(1)
        hyper = page.get_by_role("table", name="Common hyperparameter choices")
        expect(hyper.locator("tr", has_text="max_steps")).to_contain_text("2 (4)")
        page.get_by_label("Window").select_option("7")
        expect(chart).to_have_attribute("data-points", str(3 * 7))
