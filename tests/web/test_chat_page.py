"""The dashboard's chat page in a real browser: a streamed reply, a multi-turn conversation, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def test_chat_page_streams_replies_from_a_collection_model(settings: Settings, page: Any,
                                                           tiny_model_dir: Path) -> None:  # fmt: skip
    from tunelab.serving.generation import load_chat_model
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, "tiny-chat", location=str(tiny_model_dir))
    local = load_chat_model(tiny_model_dir, progress=False)
    first = local.complete([{"role": "user", "content": "Hello"}], max_new_tokens=5, temperature=0).text
    second = local.complete([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": first},
                             {"role": "user", "content": "And then?"}], max_new_tokens=5, temperature=0).text  # fmt: skip

    with studio(settings) as url:
        page.goto(f"{url}/ui/#/models/tiny-chat")
        page.get_by_role("link", name="Chat", exact=True).last.click()
        expect(page.get_by_label("Model")).to_have_value("tiny-chat")
        page.get_by_label("Temperature").fill("0")
        page.get_by_label("Max reply tokens").fill("5")
        conversation = page.get_by_role("list", name="Conversation")
        for text, expected in (("Hello", first), ("And then?", second)):
            page.get_by_label("Message").fill(text)
            page.get_by_role("button", name="Send").click()
            reply = conversation.locator(".turn.assistant").last
            expect(reply).not_to_have_attribute("aria-busy", "true")
            assert reply.locator("p").inner_text().strip() == expected
        assert conversation.locator(".turn").count() == 4

        page.goto(f"{url}/ui/#/chat?model=job-missing")
        page.get_by_label("Message").fill("Hi")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".error")).to_contain_text("not in the collection")
        expect(page.locator(".error")).to_contain_text("GET /v1/models")
        assert page.get_by_role("list", name="Conversation").locator(".turn").count() == 0
        expect(page.get_by_label("Message")).to_have_value("Hi")  # back in the box, to send again
