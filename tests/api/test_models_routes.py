"""Model routes: one memory estimate for preflight, the API and the CLI; the catalog search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import CHAT_ROWS, assert_error
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
    found = client.get("/api/models/search", params={"q": "smollm2 instruct"}).json()
    assert [m["id"] for m in found["data"]] == ["smollm2-135m-instruct"]
    assert client.get("/api/models/search", params={"q": "no-such-words"}).json()["count"] == 0
    assert_error(client.get("/api/models/search", params={"q": ""}), 422, "invalid_input")
