"""Job completion and failure reach the notification channels, and a broken channel never fails a job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tests.api.live import free_port
from tests.api.receivers import http_receiver, smtp_receiver

from tunelab.jobs import service
from tunelab.jobs.worker import Worker
from tunelab.monitor import notify
from tunelab.settings import Settings
from tunelab.store.db import session_factory

FAST = {"max_steps": 2, "max_rows": 16, "max_length": 64, "batch_size": 2, "output": {"evaluate": False}}


@pytest.fixture
def sqlite_factory(tunelab_home: Path) -> sessionmaker[Session]:
    return session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")


def _worker(factory: sessionmaker[Session], home: Path, smtp_port: int) -> Worker:
    settings = Settings(home=home, smtp_host="127.0.0.1", smtp_port=smtp_port, notify_timeout_s=3)
    return Worker(factory, "notify-test", settings, tick_s=0.2, sample_s=0.5, grace_s=20, lease_s=10)


@pytest.mark.slow
def test_completed_and_failed_jobs_notify_every_channel(
    sqlite_factory, make_config, tiny_model_dir, tunelab_home, tmp_path
) -> None:
    with http_receiver() as (base, hooks), smtp_receiver() as (smtp_port, mails):
        with sqlite_factory() as session:
            notify.create_channel(session, name="hook", kind="webhook", fields={"url": f"{base}/hook"})
            notify.create_channel(session, name="ended only", kind="slack", fields={"url": f"{base}/slack"},
                                  events=["job.failed"])
            notify.create_channel(session, name="mail", kind="email", fields={"to": ["ml@example.com"]})
            # nothing listens there: delivery fails, the job must not
            notify.create_channel(session, name="dead", kind="webhook",
                                  fields={"url": f"http://127.0.0.1:{free_port()}/gone"})
            ok = service.create_job(session, make_config(model=str(tiny_model_dir), **FAST), name="Résumé (v2)").id
        worker = _worker(sqlite_factory, tunelab_home, smtp_port)
        worker.run_once()
        with sqlite_factory() as session:
            assert service.get_job(session, ok).status == "completed"

        done = hooks.wait_for(lambda item: item["path"] == "/hook")["body"]
        assert done["event"] == "job.completed" and done["level"] == "info"
        assert done["data"]["job_id"] == ok and done["data"]["status"] == "completed"
        assert done["message"] == f"Job Résumé (v2) ({ok}) completed"
        mail = mails.wait_for(lambda item: True)
        assert mail["rcpt_tos"] == ["ml@example.com"] and "job completed" in mail["message"]["Subject"]

        # every channel that takes job.completed has recorded its delivery before the next write here
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with sqlite_factory() as session:
                sent = [c for c in notify.list_channels(session) if c.last_sent_at]
            if len(sent) == 3:
                break
            time.sleep(0.1)
        assert sorted(c.name for c in sent) == ["dead", "hook", "mail"]
        assert next(c.last_error for c in sent if c.name == "dead").startswith("ConnectError")

        bad = tmp_path / "bad.json"
        bad.write_text('{"this is": "not a list of rows"')
        with sqlite_factory() as session:
            failed = service.create_job(session, make_config(model=str(tiny_model_dir), dataset=bad, **FAST)).id
        worker.run_once()
        note = hooks.wait_for(lambda item: item["body"]["event"] == "job.failed")["body"]
        assert note["data"]["job_id"] == failed and note["level"] == "warning"
        assert note["data"]["error"]["code"] and note["message"].startswith(f"Job {failed} ({failed}) failed: ")
        slack = hooks.wait_for(lambda item: item["path"] == "/slack")["body"]
        assert failed in slack["text"]
        # the slack channel takes only job.failed: it never got the completion
        assert [h["body"]["text"] for h in hooks.items if h["path"] == "/slack"] == [slack["text"]]
        mails.wait_for(lambda item: "job failed" in item["message"]["Subject"])
