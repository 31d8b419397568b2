"""Browser helpers: Debian's chromium driven by Playwright, and a live studio to point it at."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.api.live import thread_server

from tunelab.api import create_app
from tunelab.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def launch_browser() -> Any:
    """(playwright, browser); skips with the reason when chromium or playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: `pip install -e .[dev]`")
    runner = sync_playwright().start()
    browser = runner.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
    return runner, browser


@contextmanager
def studio(settings: Settings, *, worker: bool = False, app: Any = None) -> Iterator[str]:
    """The real API (uvicorn on a free loopback port) and, if asked, one embedded worker,
    as ``tunelab serve`` runs them; yields the base URL."""
    from tunelab.jobs.worker import Worker
    from tunelab.store.db import session_factory

    app = app or create_app(settings)
    runner = None
    if worker:
        factory = session_factory(settings.resolved_database_url)
        runner = Worker(
            factory, "web-test", settings, tick_s=0.3, poll_s=0.3, sample_s=1.0, grace_s=10
        )
        thread = threading.Thread(target=runner.run_forever, daemon=True)
        thread.start()
    try:
        with thread_server(app) as url:
            yield url
    finally:
        if runner is not None:
            runner.stop()
            thread.join(timeout=60)
