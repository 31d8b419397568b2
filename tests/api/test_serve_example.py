"""`tunelab serve --example` queues the quick-start job once, never twice."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_is_queued_once_with_its_dataset_resolved(tunelab_home: Path) -> None:
    from tunelab.cli.serve import queue_example
    from tunelab.jobs import service
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    settings = get_settings()
    first = queue_example(settings, EXAMPLES / "identity-lora.yaml")
    second = queue_example(settings, EXAMPLES / "identity-lora.yaml")
    assert first is not None and second is None
    with session_factory(settings.resolved_database_url)() as session:
        job = service.get_job(session, first)
        assert job.status == "queued"
        assert job.name == "identity-lora"
        assert job.config["model"] == "smollm2-135m-instruct"
        assert Path(job.config["dataset"]) == (EXAMPLES / "data" / "identity.json").resolve()
        assert job.config["hyperparameters"]["method"] == "lora"


def test_defaults_route_publishes_every_trainconfig_field(tunelab_home: Path) -> None:
    from fastapi.testclient import TestClient

    from tunelab.api import create_app
    from tunelab.settings import get_settings
    from tunelab.training.config import TrainConfig

    with TestClient(create_app(get_settings())) as client:
        defaults = client.get("/api/configurations/defaults").json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]["TrainConfig"]
    assert set(defaults) == set(TrainConfig.model_fields) == set(schema["properties"])
    assert defaults["learning_rate"] is None and defaults["lora"]["r"] > 0
    assert schema["properties"]["batch_size"]["maximum"] == 64
