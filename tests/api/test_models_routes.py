"""Model routes: one memory estimate for preflight, the API and the CLI; the catalog search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import CHAT_ROWS, assert_error
from tests.hub_fixtures import FakeHub
from typer.testing import CliRunner

from tunelab.training.methods import METHODS


def _preflight_estimate(config, monkeypatch: pytest.MonkeyPatch) -> int:
    """The bytes preflight checks: with (almost) no free memory it names them in its error."""
    import psutil

    from tunelab.training import preflight

    real = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: real._replace(available=1))
    found = [i for i in preflight(config) if i.code == "memory_insufficient"]
    assert len(found) == 1, [i.code for i in preflight(config)]
    return found[0].details["estimated_bytes"]


@pytest.mark.parametrize("method", ["lora", "full", "prompt"])
def test_preflight_api_and_cli_report_the_same_estimate(
    method: str, client: TestClient, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunelab.cli.main import app
    from tunelab.training.config import TrainConfig

    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in CHAT_ROWS))
    shape = {"batch_size": 4, "max_length": 128}
    config = TrainConfig(model=str(tiny_model_dir), dataset=str(data), method=method, **shape)  # type: ignore[arg-type]

    response = client.get("/api/models/info", params={"name": str(tiny_model_dir), **shape})
    assert response.status_code == 200, response.text
    from_api = response.json()["memory"][method]["total_bytes"]

    result = CliRunner().invoke(app, ["models", "info", str(tiny_model_dir), "--batch-size", "4",
                                      "--max-length", "128", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    from_cli = {e["method"]: e for e in json.loads(result.output)["memory"]}[method]["total_bytes"]

    assert _preflight_estimate(config, monkeypatch) == from_api == from_cli


def test_info_lists_every_method_with_trainconfig_defaults(client: TestClient) -> None:
    from tunelab.training.config import TrainConfig

    body = client.get("/api/models/info", params={"name": "smollm2-135m-instruct"}).json()
    assert set(body["memory"]) == set(METHODS)
    lora = body["memory"]["lora"]
    assert lora["batch_size"] == TrainConfig.model_fields["batch_size"].default
    assert lora["max_length"] == TrainConfig.model_fields["max_length"].default
    # outside TrainConfig's ranges is one 422, not an error per method
    assert client.get("/api/models/info", params={"name": "smollm2-135m-instruct", "batch_size": 10_000}).status_code == 422
    # a combination TrainConfig forbids is an error for that method only
    fp32 = client.get("/api/models/info", params={"name": "smollm2-135m-instruct", "precision": "fp32"}).json()
    assert fp32["memory"]["qlora"]["error"]["code"] == "config_invalid"
    assert fp32["memory"]["lora"]["precision"] == "fp32"


def test_search_matches_words_in_the_catalog(client: TestClient) -> None:
    found = client.get("/api/models/search", params={"q": "smollm2 instruct"})
    assert [m["id"] for m in found.json()] == ["smollm2-135m-instruct"]
    # Offline (the suite's HF_HUB_OFFLINE=1): local results, and the headers say the Hub was not reached.
    assert found.headers["X-Tunelab-Hub-Reached"] == "false" and "HF_HUB_OFFLINE" in found.headers["X-Tunelab-Hub-Reason"]
    assert client.get("/api/models/search", params={"query": "no-such-words"}).json() == []
    assert_error(client.get("/api/models/search", params={"q": ""}), 422, "invalid_input")


GUIDE_MODEL = {
    "id": "meta-llama/Llama-3.1-8B-Instruct",
    "name": "Llama 3.1 8B Instruct",
    "provider": "Meta",
    "category": "Instruction Following",
}


def test_the_guides_model_calls_against_a_hub(client: TestClient, online_hub: FakeHub) -> None:
    """Stage 2 of the workflow guide, call for call: search, add to the collection, check."""
    found = client.get("/api/models/search?query=llama&limit=5")
    assert found.status_code == 200 and found.headers["X-Tunelab-Hub-Reached"] == "true"
    models = found.json()
    assert isinstance(models, list) and len(models) == 5
    selected = models[0]
    assert {k: selected[k] for k in GUIDE_MODEL} == GUIDE_MODEL
    assert (selected["parameters"], selected["downloads"], selected["likes"]) == ("8B", 50_000, 1_200)
    assert selected["description"] and selected["parameter_count"] == 8_030_261_248 and selected["size_bytes"] > 0
    assert [m["downloads"] for m in models] == sorted((m["downloads"] for m in models), reverse=True)

    added = client.post("/api/models", json=GUIDE_MODEL)
    assert added.status_code == 201, added.text
    assert {k: added.json()[k] for k in GUIDE_MODEL} == GUIDE_MODEL and added.json()["downloads"] == 50_000

    check = client.get("/api/models/check/meta-llama%2FLlama-3.1-8B-Instruct")
    assert check.status_code == 200, check.text
    body = check.json()
    assert body["id"] == GUIDE_MODEL["id"] and body["in_collection"] and body["hub"]["reached"]
    assert (body["status"], body["available"]) == ("gated", False) and body["reason"]

    page = client.get("/api/models", params={"provider": "Meta", "category": "instruction-following"}).json()
    mine = [m for m in page["data"] if m["in_collection"]]
    assert [m["id"] for m in mine] == [GUIDE_MODEL["id"]] and mine[0]["category"] == "Instruction Following"
    assert page["hub"] == {"searched": False, "reached": False, "reason": "", "endpoint": online_hub.url}
    searched = client.get("/api/models", params={"query": "llama", "category": "Code Generation"}).json()
    assert searched["hub"]["reached"] and [m["id"] for m in searched["data"]] == ["codellama/CodeLlama-7b-Instruct-hf"]
    # The Hub answering "no such model" is a 404 in the one error shape.
    assert_error(client.post("/api/models", json={"id": "nobody/no-such-model"}), 404, "not_found")


def test_collection_and_check_work_offline(client: TestClient) -> None:
    added = client.post("/api/models", json=GUIDE_MODEL)
    assert added.status_code == 201, added.text
    assert added.json()["category"] == "Instruction Following" and added.json()["info"]["hub"]["reached"] is False
    derived = client.post("/api/models", json={"id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}).json()
    assert (derived["provider"], derived["category"], derived["parameters"]) == ("TinyLlama", "Compact Models", "1.1B")
    check = client.get("/api/models/check/meta-llama%2FLlama-3.1-8B-Instruct").json()
    assert (check["status"], check["available"], check["in_collection"]) == ("offline", False, True)
    assert "HF_HUB_OFFLINE" in check["reason"] and check["hint"]
    builtin = client.get("/api/models/check/smollm2-135m-instruct").json()
    assert (builtin["status"], builtin["available"]) == ("builtin", True)
    listed = client.get("/api/models").json()
    assert {"smollm2-135m-instruct", GUIDE_MODEL["id"]} <= {m["id"] for m in listed["data"]}
    assert listed["hub"]["searched"] is False


def test_recommendations_and_meta_lists(client: TestClient) -> None:
    from tunelab.models.categories import CATEGORIES

    meta = client.get("/api/meta").json()
    assert meta["model_categories"] == list(CATEGORIES)
    assert set(meta["model_use_cases"]) == {"code", "instruction_following", "resource_constrained", "multilingual"}
    every = client.get("/api/models/recommendations").json()
    assert set(every["recommendations"]) == set(meta["model_use_cases"])
    code = client.get("/api/models/recommendations", params={"use_case": "code"}).json()["recommendations"]["code"]
    assert code[0]["id"] == "codellama/CodeLlama-7b-Instruct-hf" and all(r["reason"] for r in code)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/api/models/search", {"params": {"query": "x", "limit": 0}}, 422, "invalid_input"),
        ("GET", "/api/models/search", {"params": {"query": "x", "limit": "many"}}, 422, "invalid_input"),
        ("GET", "/api/models/search", {"params": {"query": "x", "category": "Cooking"}}, 422, "invalid_input"),
        ("GET", "/api/models", {"params": {"category": "Cooking"}}, 422, "invalid_input"),
        ("GET", "/api/models", {"params": {"hub": "perhaps"}}, 422, "invalid_input"),
        ("GET", "/api/models/recommendations", {"params": {"use_case": "cooking"}}, 422, "invalid_input"),
        ("POST", "/api/models", {"json": {"id": 42}}, 422, "invalid_input"),
        ("POST", "/api/models", {"json": {"id": "a/b", "category": "Cooking"}}, 422, "invalid_input"),
        ("POST", "/api/models", {"json": {"id": "a/b", "name": "bad\nname"}}, 422, "invalid_input"),
        ("POST", "/api/models", {"json": {"id": "a/b", "colour": "red"}}, 422, "invalid_input"),
        ("POST", "/api/models", {"json": {"id": "not a model"}}, 404, "not_found"),
    ],
)
def test_bad_model_requests_are_4xx_in_the_one_shape(
    client: TestClient, method: str, path: str, kwargs: dict, status: int, code: str
) -> None:
    assert_error(client.request(method, path, **kwargs), status, code)
