"""The OpenAI provider against a local server speaking OpenAI's fine-tuning API (``fake_openai``).

Each test drives the real worker path for a remote job: ``claim_next_job``,
then ``RemoteSupervisor.run`` on the test home's store, and checks what the
fake was sent and what the studio stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.api.live import free_port, thread_server
from tests.providers.fake_openai import MODEL, FakeOpenAI, make_app

from tunelab.datasets.records import Record
from tunelab.errors import ConfigError, Conflict, InvalidInput
from tunelab.jobs import service
from tunelab.jobs.queue import claim_next_job
from tunelab.providers.base import ProviderError
from tunelab.providers.follow import RemoteSupervisor
from tunelab.providers.openai import OpenAIProvider, openai_hyperparameters
from tunelab.settings import ProviderSettings, Settings
from tunelab.store.db import session_factory
from tunelab.store.models import Job, JobEvent, ModelEntry

ROWS = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}!"}]}
        for i in range(6)]  # fmt: skip


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    state = FakeOpenAI()
    with thread_server(make_app(state)) as url:
        yield state, url


def studio(home: Path, **providers: ProviderSettings) -> tuple[Settings, sessionmaker[Session]]:
    settings = Settings(home=home, providers=providers, worker_backoff_max_s=0.2)
    return settings, session_factory(settings.resolved_database_url)


def openai(url: str, key: str = "sk-test-key", **extra: Any) -> ProviderSettings:
    return ProviderSettings(kind="openai", url=f"{url}/v1", key=SecretStr(key), poll_s=0.05, **extra)


def submit(factory: sessionmaker[Session], settings: Settings, data: Path, **hyper: Any) -> str:
    with factory() as session:
        job = service.create_job(session, {"model": MODEL, "dataset": str(data), "hyperparameters": hyper},
                                 name="support bot v1", provider="oa", settings=settings)  # fmt: skip
        return job.id


def follow(factory: sessionmaker[Session], settings: Settings, job_id: str,
           should_stop: Callable[[], bool] = lambda: False) -> str | None:  # fmt: skip
    claimed = claim_next_job(factory, "test-worker", lease_s=10)
    assert claimed is not None and claimed.id == job_id
    return RemoteSupervisor(factory, job_id, "test-worker", settings, lease_s=10, tick_s=0.05,
                            should_stop=should_stop).run()  # fmt: skip


def remote_event_ids(factory: sessionmaker[Session], job_id: str) -> list[str]:
    with factory() as session:
        rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        return [row.data["remote"]["event_id"] for row in rows if isinstance((row.data or {}).get("remote"), dict)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def test_train_config_maps_to_openai_hyperparameters() -> None:
    sent, unsent = openai_hyperparameters({"epochs": 3, "batch_size": 8, "learning_rate": 4e-4, "seed": 7,
                                           "max_steps": 20, "lora": {"r": 8}, "eval_dataset": "ds-1"})  # fmt: skip
    assert sent == {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": pytest.approx(2.0)}
    assert unsent == ["lora", "max_steps"]


def test_records_go_to_openai_in_its_chat_format(tmp_path: Path) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    record = Record.model_validate({"tools": json.dumps(tools), "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [{"name": "weather", "arguments": '{"city": "Oslo"}'}]}]})  # fmt: skip
    provider = OpenAIProvider("oa", ProviderSettings(url="http://127.0.0.1:9"))
    line = provider.line(record)
    assert line["tools"] == tools
    assert line["messages"][1]["tool_calls"] == [
        {"id": "call_1_0", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]
    with pytest.raises(ProviderError) as refused:
        provider.write([Record(text="plain text, no conversation")], tmp_path / "train.jsonl")
    assert refused.value.code == "provider_rejected_data" and "text" in refused.value.message


def test_a_job_trains_on_openai_and_its_events_metrics_and_result_are_stored(
    fake: tuple[FakeOpenAI, str], data: Path, tunelab_home: Path
) -> None:
    state, url = fake
    settings, factory = studio(tunelab_home, oa=openai(url))
    job_id = submit(factory, settings, data, epochs=2, learning_rate=1e-4, seed=3, max_steps=5)
    assert follow(factory, settings, job_id) == "completed"

    (upload,) = [content for file_id, content in state.files.items() if state.purposes.get(file_id) == "fine-tune"]
    assert [json.loads(line) for line in upload.decode().splitlines()] == ROWS  # normalised chat records
    (remote_job,) = state.jobs.values()
    body = remote_job.body
    assert body["model"] == MODEL and body["suffix"] == "support-bot-v1" and body["seed"] == 3
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 2, "learning_rate_multiplier": pytest.approx(0.5)}}}  # fmt: skip
    assert body["metadata"] == {"tunelab_job": job_id}

    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        metrics = service.list_metrics(session, job_id)
        events = [row.data for row in service.list_events(session, job_id, types=["event"])]
        collection = session.scalars(select(ModelEntry)).all()
    assert [(m.step, m.loss, m.eval_loss) for m in metrics] == [(1, 2.0, None), (2, 1.5, None), (3, 1.0, 1.2)]
    assert job.progress == 1.0 and job.global_step == 3
    remote = job.remote or {}
    assert remote["job_id"] == remote_job.id and remote["fine_tuned_model"] == remote_job.fine_tuned_model
    assert [c["step"] for c in remote["checkpoints"]] == [3]
    assert remote["files"] == [f"results/{remote_job.result_files[0]}.csv"]
    assert (tunelab_home / "runs" / job_id / "output" / remote["files"][0]).read_text().startswith("step,train_loss")
    kinds = [event["type"] for event in events]
    assert kinds[0] == "remote_started" and "remote_settings_not_sent" in kinds and "remote_result" in kinds
    not_sent = next(e for e in events if e["type"] == "remote_settings_not_sent")
    assert not_sent["data"]["fields"] == ["max_steps"]
    messages = [e["message"] for e in events if e["type"] == "remote_message"]
    assert messages[-1] == "oa: The job has successfully completed"
    assert collection == []  # the weights stay with the provider: nothing to load here
    assert len(remote_event_ids(factory, job_id)) == len(set(remote_event_ids(factory, job_id)))


def test_a_restarted_worker_follows_the_same_remote_job_without_storing_an_event_twice(
    fake: tuple[FakeOpenAI, str], data: Path, tunelab_home: Path
) -> None:
    state, url = fake
    settings, factory = studio(tunelab_home, oa=openai(url))
    job_id = submit(factory, settings, data)
    # the worker shuts down after its first poll: the job goes back to the queue, the remote job trains on
    assert follow(factory, settings, job_id, should_stop=lambda: True) == "queued"
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.attempts == 1 and job.remote and job.remote["after"]
        seen = len(service.list_metrics(session, job_id))
    assert 0 < seen < 3
    assert follow(factory, settings, job_id) == "completed"
    assert len(state.jobs) == 1  # followed again, not started again
    (remote_job,) = state.jobs.values()
    with factory() as session:
        metrics_events = [row.data["step"] for row in service.list_events(session, job_id, types=["metrics"])]
    assert metrics_events == [1, 2, 3]
    ids = remote_event_ids(factory, job_id)
    assert sorted(ids) == sorted({e["id"] for e in remote_job.events if e["type"] != "metrics"})


def test_cancel_is_sent_to_the_provider(fake: tuple[FakeOpenAI, str], data: Path, tunelab_home: Path) -> None:
    state, url = fake
    settings, factory = studio(tunelab_home, oa=openai(url))
    job_id = submit(factory, settings, data)
    state.hold = True  # the remote job stays validating until cancelled

    def cancel_once_started() -> bool:
        with factory() as session:
            job = session.get(Job, job_id)
            started = job is not None and bool(job.remote) and job.requested_action is None
        if started:  # each request in a session of its own, as the API makes them
            with factory() as session, pytest.raises(Conflict, match="reaches only this studio's own engine"):
                service.checkpoint_job(session, job_id)  # nothing would relay it to the provider
            with factory() as session:
                service.cancel_job(session, job_id)
        return False

    assert follow(factory, settings, job_id, should_stop=cancel_once_started) == "cancelled"
    (remote_job,) = state.jobs.values()
    assert remote_job.status == "cancelled"
    assert f"POST /v1/fine_tuning/jobs/{remote_job.id}/cancel" in state.calls


def test_pause_and_resume_travel_to_the_provider(fake: tuple[FakeOpenAI, str], data: Path, tunelab_home: Path) -> None:
    state, url = fake
    settings, factory = studio(tunelab_home, oa=openai(url))
    job_id = submit(factory, settings, data)
    state.hold = True

    def pause_once_started() -> bool:
        with factory() as session:
            job = session.get(Job, job_id)
            started = job is not None and bool(job.remote) and job.requested_action is None
        if started:
            with factory() as session:
                service.pause_job(session, job_id)
        return False

    assert follow(factory, settings, job_id, should_stop=pause_once_started) == "paused"
    (remote_job,) = state.jobs.values()
    assert remote_job.status == "paused"
    with factory() as session:
        service.resume_job(session, job_id)
    state.hold = False
    assert follow(factory, settings, job_id) == "completed"
    assert len(state.jobs) == 1 and f"POST /v1/fine_tuning/jobs/{remote_job.id}/resume" in state.calls
    with factory() as session:
        kinds = [row.data.get("type") for row in service.list_events(session, job_id, types=["event"])]
    assert kinds.count("remote_started") == 1 and "remote_resumed" in kinds


def test_a_wrong_key_fails_the_job_naming_the_setting(
    fake: tuple[FakeOpenAI, str], data: Path, tunelab_home: Path
) -> None:
    _state, url = fake
    settings, factory = studio(tunelab_home, oa=openai(url, key="sk-wrong-key"))
    job_id = submit(factory, settings, data)
    assert follow(factory, settings, job_id) == "failed"
    with factory() as session:
        job = session.get(Job, job_id)
    assert job is not None and job.error is not None
    assert job.error["code"] == "provider_unauthorized"
    assert "Incorrect API key provided" in job.error["message"] and "sk-wrong-key" not in json.dumps(job.error)
    assert "TUNELAB_PROVIDER_OA_KEY" in job.error["hint"]


def test_an_unreachable_provider_fails_the_job_after_its_grace(data: Path, tunelab_home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings, factory = studio(tunelab_home, oa=openai(url, unreachable_s=0.3))
    job_id = submit(factory, settings, data)
    assert follow(factory, settings, job_id) == "failed"
    with factory() as session:
        job = session.get(Job, job_id)
        kinds = [row.data.get("type") for row in service.list_events(session, job_id, types=["event"])]
    assert job is not None and job.error and job.error["code"] == "provider_unreachable"
    assert "TUNELAB_PROVIDER_OA_URL" in job.error["hint"] and "provider_unavailable" in kinds


def test_remote_jobs_name_known_providers_and_carry_no_local_only_fields(data: Path, tunelab_home: Path) -> None:
    settings, factory = studio(tunelab_home, oa=openai("http://127.0.0.1:9"))
    with factory() as session:
        with pytest.raises(InvalidInput) as unknown:
            service.create_job(session, {"model": MODEL, "dataset": str(data)}, provider="elsewhere",
                               settings=settings)  # fmt: skip
        assert "local, oa" in unknown.value.message and "TUNELAB_PROVIDER_ELSEWHERE_URL" in unknown.value.hint
        with pytest.raises(ConfigError) as mixed:
            service.create_job(session, {"model": MODEL, "dataset": str(data), "hyperparameters": {
                "dataset_mix": [{"dataset": str(data), "share": 0.2}]}}, provider="oa", settings=settings)  # fmt: skip
        assert "`dataset_mix`" in mixed.value.message
