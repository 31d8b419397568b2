"""POST /api/estimate and POST /api/advisor: the service's answers, and clear 4xx for impossible input."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.models import model_info
from tunelab.training import estimate, methods


def test_estimate_answers_what_the_service_computes(client: TestClient) -> None:
    body = {"config": {"method": "lora", "batch_size": 4, "max_length": 256, "max_steps": 50}, "budget": 5}
    response = client.post("/api/estimate", json=body)
    assert response.status_code == 200, response.text
    found = response.json()
    config = methods.sizing_config("lora", batch_size=4, max_length=256, max_steps=50)
    expected = estimate.estimate(config, model_info("smollm2-135m-instruct"), budget=5)
    assert found["memory"] == expected.memory.model_dump(mode="json")
    assert [d["name"] for d in found["devices"]] == [d.name for d in expected.devices]
    assert found["total_tokens"] == 50 * 4 * 256
    assert found["cheapest"]["cost"] <= 5
    split = found["memory"]
    assert split["activations_with_checkpointing_bytes"] < split["activations_without_checkpointing_bytes"]


def test_batch_size_changes_the_memory(client: TestClient) -> None:
    small, big = (
        client.post("/api/estimate", json={"config": {"batch_size": size}}).json()["memory"] for size in (1, 16)
    )
    assert big["activations_bytes"] > small["activations_bytes"]
    assert big["weights_bytes"] == small["weights_bytes"]


def test_impossible_inputs_answer_4xx_naming_the_field(client: TestClient, tmp_path: Path) -> None:
    error = assert_error(client.post("/api/estimate", json={"config": {"max_steps": 10}, "budget": 0}), 422,
                         "invalid_input")  # fmt: skip
    assert "`budget`" in error["message"]
    error = assert_error(client.post("/api/estimate", json={"config": {"colour": "blue"}}), 422, "config_invalid")
    assert "colour" in error["message"]
    error = assert_error(client.post("/api/estimate", json={"config": {}, "colour": 1}), 422, "invalid_input")
    assert "colour" in str(error)
    error = assert_error(client.post("/api/estimate", json={"config": {"batch_size": 0}}), 422, "config_invalid")
    assert "batch_size" in error["message"]
    error = assert_error(client.post("/api/estimate", json={"config": {"model": 7}}), 422, "invalid_input")
    assert "config.model" in error["message"]
    assert_error(client.post("/api/estimate", json={"config": {"model": "no-such-model"}}), 404, "not_found")


def test_a_model_that_fits_nowhere_is_422_naming_model(client: TestClient, tmp_path: Path) -> None:
    import json

    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 16384, "intermediate_size": 53248,
        "num_hidden_layers": 126, "num_attention_heads": 128, "num_key_value_heads": 8, "vocab_size": 128256,
    }))  # fmt: skip
    response = client.post("/api/estimate", json={"config": {"model": str(folder), "method": "full"}})
    error = assert_error(response, 422, "does_not_fit")
    assert "`model`" in error["message"] and error["details"]["field"] == "model"


def test_advisor_gives_the_lessons_answer(client: TestClient) -> None:
    body = {"data_volume": "large", "knowledge_type": "behavioral", "update_frequency": "rare",
            "budget": "medium", "latency_sensitive": True, "accuracy_critical": False}  # fmt: skip
    found = client.post("/api/advisor", json=body).json()
    assert found["recommendation"] == "fine-tuning"
    assert (found["fine_tuning_score"], found["rag_score"]) == (7, 2)
    assert len(found["reasons"]) == 6
    error = assert_error(client.post("/api/advisor", json={"budget": "infinite"}), 422, "invalid_input")
    assert "budget" in str(error)


def test_sdk_estimate_and_advise_over_http(base_url: str) -> None:
    from tunelab.client import Client
    from tunelab.errors import TunelabError

    with Client(base_url) as sdk:
        found = sdk.estimate({"method": "qlora", "batch_size": 2}, rows=1000, budget=10)
        assert found["method"] == "qlora" and found["cheapest"]["cost"] <= 10
        assert found["steps"] == 3 * 450  # 900 training rows / batch 2, three epochs
        advice = sdk.advise(data_volume="large", knowledge_type="behavioral", budget="medium", latency_sensitive=True)
        assert (advice["fine_tuning_score"], advice["rag_score"]) == (7, 2)
        try:
            sdk.estimate({"max_steps": 5}, budget=0)
        except TunelabError as error:
            assert error.details["http_status"] == 422 and "`budget`" in error.message
        else:
            raise AssertionError("a budget of 0 must be refused")
