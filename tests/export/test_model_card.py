"""Model cards from real tiny-model runs, and what a completed job does with push_to_hub offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tunelab.export.model_card import render_model_card
from tunelab.jobs import service
from tunelab.jobs.worker import Worker
from tunelab.store.db import session_factory
from tunelab.store.models import Job

FAST = {"max_rows": 40, "max_length": 96, "batch_size": 2, "max_steps": 4, "learning_rate": 0.002}


@pytest.fixture
def factory(tunelab_home: Path) -> sessionmaker[Session]:
    return session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")


def _run(factory: sessionmaker[Session], config: dict[str, Any], options: dict[str, Any]) -> Job:
    with factory() as session:
        job_id = service.create_job(session, config, name="numbers", save_options=options).id
    assert Worker(factory, tick_s=0.2, sample_s=5, grace_s=20, lease_s=10).run_once() == job_id
    with factory() as session:
        return service.get_job(session, job_id)


def _events(factory: sessionmaker[Session], job_id: str) -> list[dict[str, Any]]:
    with factory() as session:
        return [e.data for e in service.list_events(session, job_id, types=["event"], limit=10_000)]


@pytest.mark.slow
def test_completed_job_output_has_a_model_card(
    factory, make_config: Callable[..., dict[str, Any]], tiny_model_dir: Path
) -> None:
    output = {"evaluate": True, "eval_generations": 1, "max_new_tokens": 4}
    config = make_config(model=str(tiny_model_dir), **FAST, output=output)
    job = _run(factory, config, {"save_model": True, "model_name": "numbers-tuned"})
    assert job.status == "completed"
    out = Path(job.run_dir) / "output"
    card = (out / "README.md").read_text()
    evaluation = json.loads((out / "evaluation.json").read_text())
    base, tuned = evaluation["base"]["eval_loss"], evaluation["tuned"]["eval_loss"]
    assert card.startswith("---\n") and "library_name: peft" in card
    assert "base_model:" not in card  # a local folder is no Hub id
    assert "# numbers-tuned" in card and f"`{tiny_model_dir}`" in card and "**lora**" in card
    assert "numbers.json" in card  # the dataset
    for row in ("| `learning_rate` | 0.002 |", "| `max_steps` | 4 |", "| `batch_size` | 2 |",
                "| `lora.r` | 16 |", "- steps: 4"):  # fmt: skip
        assert row in card, row
    assert f"| base | {base:.4g} |" in card and f"| tuned | {tuned:.4g} |" in card
    assert f"Change in eval loss: {tuned - base:+.4f}" in card
    with factory() as session:
        assert "output/README.md" in {a.path for a in service.list_artifacts(session, job.id)}
    assert not {"pushed", "push_failed"} & {e.get("type") for e in _events(factory, job.id)}


@pytest.mark.slow
def test_push_offline_completes_and_records_why(
    factory, make_config: Callable[..., dict[str, Any]], tiny_model_dir: Path
) -> None:
    config = make_config(model=str(tiny_model_dir), **FAST, output={"evaluate": False})
    options = {
        "save_model": True,
        "model_name": "alice/numbers",
        "push_to_hub": True,
        "public": True,
    }
    job = _run(factory, config, options)  # HF_HUB_OFFLINE=1 comes from tests/conftest.py
    assert job.status == "completed" and job.error is None
    failed = [e for e in _events(factory, job.id) if e.get("type") == "push_failed"]
    assert len(failed) == 1
    data = failed[0]["data"]
    assert data["code"] == "hub_offline" and data["repo_id"] == "alice/numbers"
    assert "offline" in data["message"] and "hf upload alice/numbers" in data["hint"]
    assert (Path(job.run_dir) / "output" / "README.md").is_file()  # still useful without a hub


def test_card_without_evaluation_says_so() -> None:
    config = {
        "model": "HuggingFaceTB/SmolLM2-135M",
        "dataset": "ds-1",
        "method": "full",
        "epochs": 2,
    }
    card = render_model_card(config, {"steps": 10, "adapter": False}, {}, title="alice/full")
    assert "No evaluation was run" in card and "library_name" not in card
    assert "base_model: HuggingFaceTB/SmolLM2-135M\n" in card
    assert 'from_pretrained("alice/full")' in card and "| `epochs` | 2 |" in card
