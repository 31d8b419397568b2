"""Web fixtures: the API tests' app fixtures, one headless chromium, a checked page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.api.conftest import client, settings
from tests.web.browser import launch_browser

__all__ = ["browser", "client", "page", "settings"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the whole session (launching costs 1-2 s); skips without one."""
    runner, launched = launch_browser()
    yield launched
    launched.close()
    runner.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own storage); fails the test on an uncaught script error or a CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
            if "Content Security Policy" in msg.text else None)  # fmt: skip
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not problems, problems
