"""The job state machine: the one place that says which status may follow which.

Every status change in the studio goes through ``check_transition``, so an
illegal one fails the same way everywhere: ``IllegalTransition`` (HTTP 409)
whose details list the statuses allowed from the current one.

Transitions (DESIGN.md, plus the cancels a user expects):

    created -> queued | cancelled
    queued  -> running | cancelled
    running -> completed | failed | cancelled | paused | queued
    paused  -> queued | cancelled

``running -> queued`` is not a user action: it is the worker giving a job back
(worker stopped, or its lease expired and the job is requeued for a new
attempt). Terminal states (completed, failed, cancelled) never change; *retry*
creates a new job that points back with ``retry_of``.
"""

from __future__ import annotations

from enum import StrEnum

from tunelab.errors import Conflict, IllegalTransition, InvalidInput
from tunelab.store.models import PRIORITIES, PRIORITY_NAMES


class JobStatus(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.PAUSED,
            JobStatus.QUEUED,
        }
    ),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}



#: The user's moves and the statuses each may start from, as ``jobs.service`` enforces them
#: (``pause_job``, ``resume_job``, ``cancel_job``, ``retry_job``; a test holds them together).
#: Resuming a created job queues it; ``running -> queued`` is the worker's move, never a
#: user's; retry makes a new job, so it starts from the terminal states a retry is for.
ACTIONS: dict[str, frozenset[JobStatus]] = {
    "pause": frozenset({JobStatus.RUNNING}),
    "resume": frozenset({JobStatus.PAUSED, JobStatus.CREATED}),
    "cancel": frozenset({JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}),
    "retry": frozenset({JobStatus.FAILED, JobStatus.CANCELLED}),
}


#: Interventions on a running job, as ``jobs.service`` enforces them (``checkpoint_job``,
#: ``set_learning_rate``, ``stop_early_job``): requests the worker relays to the engine's
#: control file (``training/stopping.py``), applied at the next step boundary. Only a running
#: engine can take them; a paused job resumes from its checkpoint, with its configured rate.
INTERVENTIONS: dict[str, frozenset[JobStatus]] = {
    "checkpoint": frozenset({JobStatus.RUNNING}),
    "learning_rate": frozenset({JobStatus.RUNNING}),
    "stop_early": frozenset({JobStatus.RUNNING}),
}


_ACTION_HINTS = {
    "checkpoint": "only a running job can be checkpointed; a paused job already has one",
    "learning_rate": "only a running job's learning rate can be changed; set it in the configuration "
                     "of a new job (or retry) otherwise",
    "stop_early": "only a running job can be stopped early; cancel a queued one",
    "pause": "only a running job can be paused",
    "resume": "pause it first, or retry a failed or cancelled job",
    "cancel": "the job has already ended",
    "retry": "pause/resume a running job, or wait for it to finish",
}


def check_action(job_id: str, status: str, action: str) -> None:
    """Raise ``IllegalTransition`` unless a user may ``action`` a job in ``status``.

    ``action`` is a key of ``ACTIONS`` or of ``INTERVENTIONS``.
    """
    starts = ACTIONS[action] if action in ACTIONS else INTERVENTIONS[action]
    allowed = sorted(s.value for s in starts)
    if JobStatus(status) in starts:
        return
    # retry leaves this job as it is (it makes a new one): a conflict, not a transition
    error = Conflict if action == "retry" else IllegalTransition
    raise error(
        f"job {job_id} is '{JobStatus(status).value}'; {action} needs a job that is "
        f"{' or '.join(allowed)}",
        _ACTION_HINTS[action],
        details={"job_id": job_id, "status": JobStatus(status).value, "action": action,
                 "allowed": allowed},
    )  # fmt: skip


def allowed_from(status: str) -> list[str]:
    """The statuses a job in ``status`` may move to, sorted for stable messages."""
    return sorted(s.value for s in TRANSITIONS[JobStatus(status)])


def check_transition(job_id: str, current: str, target: str) -> None:
    """Raise ``IllegalTransition`` unless ``current -> target`` is allowed."""
    current, target = JobStatus(current).value, JobStatus(target).value
    allowed = allowed_from(current)
    if JobStatus(target) in TRANSITIONS[JobStatus(current)]:
        return
    hint = (
        f"from '{current}' a job may go to: {', '.join(allowed)}"
        if allowed
        else f"'{current}' is final; use retry to run the same configuration again"
    )
    raise IllegalTransition(
        f"job {job_id} cannot go from '{current}' to '{target}'",
        hint,
        details={
            "job_id": job_id,
            "status": str(current),
            "target": str(target),
            "allowed": allowed,
        },
    )


def parse_priority(value: str | int) -> int:
    """Accept 'high'/'medium'/'low' or 0/1/2; anything else is a 422 with the choices."""
    if isinstance(value, int) and value in PRIORITY_NAMES:
        return value
    if isinstance(value, str) and value.lower() in PRIORITIES:
        return PRIORITIES[value.lower()]
    raise InvalidInput(
        f"unknown priority {value!r}",
        "use one of: high, medium, low",
        details={"allowed": list(PRIORITIES)},
    )
