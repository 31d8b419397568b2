"""After a job completes: write its model card, and push its output to the Hub if asked.

The card is written before outputs are registered, so it is an artifact like
any other file. The push runs after the job is marked completed, outside the
tick transaction and without a lease, because an upload can take far longer
than a lease: a training that succeeded stays ``completed`` whatever the Hub
does, and the result is an ``event`` in the job's stream, ``pushed`` (with the
repo URL) or ``push_failed`` (with code, message and hint), never a silent no-op.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import TunelabError
from tunelab.export.hub import hub_target, push_to_hub
from tunelab.export.model_card import write_model_card
from tunelab.jobs.events import add_event
from tunelab.settings import Settings
from tunelab.store.models import Job

log = logging.getLogger("tunelab.worker")


def write_card(job: Job, run_dir: Path) -> None:
    """Write ``output/README.md``; a card that cannot be written is logged, never a failed job."""
    title = str((job.save_options or {}).get("model_name") or job.name or job.id)
    try:
        write_model_card(run_dir, title=title)
    except OSError as error:
        log.warning("job %s: could not write the model card: %s", job.id, error)


def _event(kind: str, message: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"time": time.time(), "type": kind, "message": message, "data": data}


def push_output(
    factory: sessionmaker[Session], job_id: str, run_dir: Path, settings: Settings
) -> dict[str, Any] | None:
    """Push a completed job's output when its save options ask; returns the event recorded."""
    with factory() as session:
        job = session.get(Job, job_id)
        options = dict(job.save_options or {}) if job is not None else {}
    if not options.get("push_to_hub"):
        return None
    repo_id = str(options.get("model_name") or "")
    try:
        target = hub_target(options)
        if target is None:
            return None
        repo_id, private = target
        url = push_to_hub(run_dir / "output", repo_id, private=private, offline=settings.offline)
        event = _event(
            "pushed", f"pushed to {url}", {"repo_id": repo_id, "url": url, "private": private}
        )
    except TunelabError as error:
        log.warning("job %s: push to the Hub failed: %s", job_id, error)
        event = _event("push_failed", error.message, {"repo_id": repo_id, **error.to_dict()})
    with factory() as session:
        add_event(session, job_id, "event", event)
        session.commit()
    return event
