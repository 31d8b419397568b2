"""Job service functions on SQLite and PostgreSQL: create, list, control, retry, delete, events."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import ConfigError, Conflict, IllegalTransition, InvalidInput, NotFound
from tunelab.jobs import service
from tunelab.jobs.events import set_status


def test_create_queues_with_events(session: Session, make_config) -> None:
    job = service.create_job(
        session, make_config(max_steps=3), name="first", tags=["a", "b"], priority="high", timeout_s=60
    )
    assert job.id.startswith("job-") and len(job.id) == 16
    assert job.status == "queued" and job.priority == 0 and job.tags == ["a", "b"]
    body = job.to_dict()
    assert body["priority"] == "high" and body["config"]["hyperparameters"] == {"max_steps": 3}
    events = service.list_events(session, job.id)
    assert [e.data["status"] for e in events] == ["created", "queued"]
    assert events[0].id < events[1].id
    assert [e.id for e in service.list_events(session, job.id, after=events[0].id)] == [events[1].id]


def test_create_rejects_bad_config_with_every_problem(session: Session, make_config) -> None:
    with pytest.raises(ConfigError) as info:
        service.create_job(session, make_config(epochs=99, batch_size=0))
    assert "epochs" in info.value.message and "batch_size" in info.value.message
    with pytest.raises(ConfigError) as info:
        service.create_job(session, {"model": "", "dataset": "", "extra": 1})
    assert len(info.value.details["errors"]) == 3
    with pytest.raises(ConfigError):
        service.create_job(session, make_config(dataset="/no/such/file.json"))
    with pytest.raises(InvalidInput):
        service.create_job(session, make_config(), priority="urgent")
    assert service.list_jobs(session)[1] == 0


def test_list_filters_and_pages(session: Session, make_config) -> None:
    ids = [
        service.create_job(session, make_config(), name=f"run {i}", tags=["x"] if i % 2 else []).id
        for i in range(5)
    ]
    service.cancel_job(session, ids[0])
    page, total = service.list_jobs(session, limit=2)
    assert total == 5 and len(page) == 2
    newest_first = [j.id for j in service.list_jobs(session)[0]]
    assert sorted(newest_first) == sorted(ids)
    assert [j.id for j in service.list_jobs(session, limit=2, offset=2)[0]] == newest_first[2:4]
    assert service.list_jobs(session, limit=2, offset=4)[1] == 5 and not service.list_jobs(session, offset=9)[0]
    assert service.list_jobs(session, status=["queued", "cancelled"], search="run", limit=1)[1] == 5
    assert [j.id for j in service.list_jobs(session, status="cancelled")[0]] == [ids[0]]
    assert {j.id for j in service.list_jobs(session, tag="x")[0]} == {ids[1], ids[3]}
    assert [j.id for j in service.list_jobs(session, search="run 4")[0]] == [ids[4]]
    with pytest.raises(InvalidInput):
        service.list_jobs(session, status="bogus")


def test_unknown_id_is_404(session: Session) -> None:
    for call in (service.get_job, service.cancel_job, service.pause_job, service.list_metrics):
        with pytest.raises(NotFound) as info:
            call(session, "job-nope")
        assert info.value.hint


def test_pause_resume_cancel_rules(session: Session, make_config) -> None:
    job = service.create_job(session, make_config())
    with pytest.raises(IllegalTransition) as info:
        service.pause_job(session, job.id)  # only running jobs pause
    assert info.value.details["allowed"] == ["cancelled", "running"]
    with pytest.raises(IllegalTransition):
        service.resume_job(session, job.id)
    set_status(session, job, "running")
    session.commit()
    paused = service.pause_job(session, job.id)
    assert paused.status == "running" and paused.requested_action == "pause"
    assert service.pause_job(session, job.id).requested_action == "pause"  # idempotent
    set_status(session, job, "paused")
    session.commit()
    resumed = service.resume_job(session, job.id)
    assert resumed.status == "queued" and resumed.requested_action is None
    cancelled = service.cancel_job(session, job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(IllegalTransition) as info:
        service.cancel_job(session, job.id)
    assert info.value.details["allowed"] == []


def test_cancel_running_is_a_request(session: Session, make_config) -> None:
    job = service.create_job(session, make_config())
    set_status(session, job, "running")
    session.commit()
    job = service.cancel_job(session, job.id)
    assert job.status == "running" and job.requested_action == "cancel"
    with pytest.raises(Conflict):
        service.pause_job(session, job.id)  # a cancel is already on its way


def test_retry_makes_a_new_job(session: Session, make_config) -> None:
    job = service.create_job(session, make_config(max_steps=2), name="r", priority="low")
    with pytest.raises(Conflict) as info:
        service.retry_job(session, job.id)
    assert info.value.details["allowed"] == ["cancelled", "failed"]
    service.cancel_job(session, job.id)
    again = service.retry_job(session, job.id)
    assert again.id != job.id and again.retry_of == job.id
    assert again.status == "queued" and again.priority == 2 and again.config == job.config
    assert service.get_job(session, job.id).status == "cancelled"


def test_delete_only_when_finished(session: Session, make_config) -> None:
    job = service.create_job(session, make_config())
    with pytest.raises(Conflict):
        service.delete_job(session, job.id)
    service.cancel_job(session, job.id)
    service.delete_job(session, job.id)
    with pytest.raises(NotFound):
        service.get_job(session, job.id)
