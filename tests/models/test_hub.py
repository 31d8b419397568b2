"""Hub search, checks and categories against a real HTTP server speaking the Hub's JSON.

The server (tests/hub_fixtures.py) answers ``/api/models`` and ``/api/models/{org}/{name}``
as huggingface.co does; ``huggingface_hub.HfApi`` talks to it over HTTP. Offline
degradation is checked three ways: offline mode (the suite's default), nothing listening,
and a Hub that answers too late.
"""

from __future__ import annotations

import socket
import time

import pytest
from tests.hub_fixtures import HUB_MODELS, FakeHub, go_online

from tunelab.models import categories, hub


@pytest.mark.parametrize(
    ("model_id", "pipeline", "tags", "count", "expected"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "text-generation", ["conversational"], 8_030_261_248, "Instruction Following"),
        ("codellama/CodeLlama-7b-Instruct-hf", "text-generation", [], None, "Code Generation"),
        ("bigcode/starcoder2-15b", "text-generation", [], None, "Code Generation"),
        ("Qwen/Qwen2-VL-7B-Instruct", "image-text-to-text", [], None, "Multimodal"),
        ("llava-hf/llava-1.5-7b-hf", "text-generation", [], None, "Multimodal"),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "text-generation", ["conversational"], None, "Compact Models"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "text-generation", [], 134_515_008, "Compact Models"),
        ("meta-llama/Llama-2-7b-chat-hf", "text-generation", ["conversational"], None, "Conversational"),
        ("google/gemma-2-9b-it", "text-generation", [], None, "Instruction Following"),
        ("EleutherAI/gpt-j-6b", "text-generation", [], 6_050_882_784, "Text Generation"),
        ("mistralai/Mixtral-8x7B-v0.1", "text-generation", [], None, "Text Generation"),
    ],
)
def test_one_category_from_pipeline_tags_name_and_size(
    model_id: str, pipeline: str, tags: list[str], count: int | None, expected: str
) -> None:
    assert categories.categorize(model_id, pipeline_tag=pipeline, tags=tags, parameter_count=count) == expected


def test_sizes_as_text_and_from_names() -> None:
    assert categories.parameters_text(8_030_261_248) == "8B"
    assert categories.parameters_text(1_100_048_384) == "1.1B"
    assert categories.parameters_text(134_515_008) == "135M"
    assert categories.parameters_text(None) is None
    assert categories.parameters_from_name("Llama-3.1-8B-Instruct") == 8_000_000_000
    assert categories.parameters_from_name("Qwen2.5-1.5B") == 1_500_000_000
    assert categories.parameters_from_name("SmolLM2-135M") == 135_000_000
    assert categories.parameters_from_name("Mixtral-8x7B") is None  # the expert size, not the total
    assert categories.parameters_from_name("gpt2-medium") is None
    assert categories.parse_category("code-generation") == "Code Generation"
    with pytest.raises(categories.InvalidInput):
        categories.parse_category("cooking")


def test_search_asks_the_hub_for_text_generation_by_downloads(online_hub: FakeHub) -> None:
    found = hub.search_models("llama", limit=5)
    assert found.hub.reached and found.hub.searched and found.hub.endpoint == online_hub.url
    path, query = online_hub.requests[0]
    assert path == "/api/models"
    assert query["search"] == ["llama"] and query["filter"] == ["text-generation"] and query["sort"] == ["downloads"]
    assert {"downloads", "likes", "safetensors", "cardData", "gated"} <= set(query["expand"])
    served = sorted((m for m in HUB_MODELS if "llama" in m["id"].lower() and m["pipeline_tag"] == "text-generation"),
                    key=lambda m: -m["downloads"])[:5]  # fmt: skip
    assert [r.id for r in found.data] == [m["id"] for m in served]
    top = found.data[0]
    assert top.model_dump(include={"id", "name", "provider", "category", "parameters", "downloads", "likes", "license"}) == {
        "id": "meta-llama/Llama-3.1-8B-Instruct", "name": "Llama 3.1 8B Instruct", "provider": "Meta",
        "category": "Instruction Following", "parameters": "8B", "downloads": 50_000, "likes": 1_200,
        "license": "llama3.1",
    }  # fmt: skip
    assert top.parameter_count == 8_030_261_248 and top.size_bytes == 2 * 8_030_261_248  # BF16
    assert top.gated and top.source == "hub" and "Meta" in top.description


def test_search_merges_the_local_catalog(online_hub: FakeHub) -> None:
    found = hub.search_models("smollm2", limit=10)
    # The built-in's Hub repository comes back once, as the built-in (usable offline) with the Hub's counts.
    assert [(r.id, r.source) for r in found.data] == [("smollm2-135m-instruct", "builtin")]
    assert found.data[0].available and found.data[0].downloads == 61_000 and found.data[0].likes == 180
    # Filters apply to Hub and local results alike; Multimodal asks the Hub for its own pipeline.
    compact = hub.search_models(None, limit=10, category="Compact Models")
    assert compact.data and all(r.category == "Compact Models" for r in compact.data)
    ids = [r.id for r in compact.data]
    assert ids.count("smollm2-135m-instruct") == 1 and "HuggingFaceTB/SmolLM2-135M-Instruct" not in ids
    hub.search_models(None, limit=3, category="Multimodal")
    assert online_hub.requests[-1][1]["filter"] == ["image-text-to-text"]
    meta = hub.search_models(None, limit=10, provider="Meta")
    assert "meta-llama" in {q["author"][0] for _, q in online_hub.requests if "author" in q}
    assert {r.provider for r in meta.data} == {"Meta"}


def test_offline_search_is_local_results_and_the_reason(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)  # HF_HUB_OFFLINE=1 is the suite's default
    found = hub.search_models("llama", limit=5)
    assert [r.id for r in found.data] == ["smollm2-135m-instruct"]  # its architecture is Llama
    assert found.hub.searched and not found.hub.reached and "HF_HUB_OFFLINE" in found.hub.reason
    assert fake_hub.requests == []
    assert hub.check_model("meta-llama/Llama-3.1-8B-Instruct").status == "offline"


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_hub_answers_local_results_fast_then_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch, f"http://127.0.0.1:{_dead_port()}", timeout_s=2.0)
    started = time.monotonic()
    found = hub.search_models("smol", limit=5)
    assert time.monotonic() - started < 3.0
    assert [r.id for r in found.data] == ["smollm2-135m-instruct"]
    assert not found.hub.reached and found.hub.reason
    again = hub.search_models("smol", limit=5)
    assert "not retried" in again.hub.reason
    check = hub.check_model("mistralai/Mistral-7B-Instruct-v0.3")
    assert check.status == "unreachable" and not check.available and check.hint


def test_a_hub_slower_than_the_timeout_is_not_waited_for(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    go_online(monkeypatch, fake_hub.url, timeout_s=0.5)
    fake_hub.delay_s = 3.0
    started = time.monotonic()
    found = hub.search_models("llama", limit=5)
    assert time.monotonic() - started < 2.0
    assert not found.hub.reached and "within 0.5 s" in found.hub.reason
    assert [r.id for r in found.data] == ["smollm2-135m-instruct"]


def test_check_says_why(online_hub: FakeHub) -> None:
    builtin = hub.check_model("smollm2-135m-instruct")
    assert builtin.available and builtin.status == "builtin" and not builtin.hub.searched
    gated = hub.check_model("meta-llama/Llama-3.1-8B-Instruct")
    assert (gated.status, gated.available) == ("gated", False) and "HF_TOKEN" in gated.reason
    assert online_hub.requests[-1][0] == "/api/models/meta-llama/Llama-3.1-8B-Instruct"
    open_model = hub.check_model("mistralai/Mistral-7B-Instruct-v0.3")
    assert (open_model.status, open_model.available) == ("on_hub", True)
    assert open_model.model is not None and open_model.model.downloads == 45_000
    missing = hub.check_model("nobody/no-such-model")
    assert (missing.status, missing.available) == ("not_found", False) and missing.hub.reached
    assert hub.check_model("not a model id").status == "not_found"


def test_recommendations_cover_the_guides_use_cases() -> None:
    found = categories.recommendations()
    assert set(found) == {"code", "instruction_following", "resource_constrained", "multilingual"}
    for items in found.values():
        assert items and all(r.reason and r.category in categories.CATEGORIES for r in items)
    assert [r.id for r in categories.recommendations("Code Generation")["code"]][:2] == [
        "codellama/CodeLlama-7b-Instruct-hf", "bigcode/starcoder2-15b"]  # fmt: skip
    assert "smollm2-135m-instruct" in [r.id for r in categories.recommendations("resource-constrained")["resource_constrained"]]
    with pytest.raises(categories.InvalidInput):
        categories.recommendations("cooking")


def test_cli_search_lists_hub_results_by_downloads(online_hub: FakeHub) -> None:
    import json

    from typer.testing import CliRunner

    from tunelab.cli.main import _register, app

    _register()
    done = CliRunner().invoke(app, ["models", "search", "llama", "--limit", "3", "--json"])
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["hub"]["reached"] is True
    assert body["data"][0]["id"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert len(body["data"]) == 3


def test_cli_search_offline_says_the_hub_was_not_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tunelab.cli.main import _register, app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps long ids in a narrow table
    _register()
    done = CliRunner().invoke(app, ["models", "search", "llama"])
    assert done.exit_code == 0, done.output
    assert "smollm2-135m-instruct" in done.output
    assert "Hub not reached" in done.output
