"""``states.ACTIONS`` (which the dashboard gets from GET /api/meta to enable its buttons) says
exactly what the service functions do: each user action succeeds from the statuses it lists
and is refused from every other one."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import TunelabError
from tunelab.jobs import service
from tunelab.jobs.states import ACTIONS, JobStatus

CASES = list(itertools.product(sorted(ACTIONS), [s.value for s in JobStatus]))


@pytest.mark.parametrize(("action", "status"), CASES)
def test_action_table_matches_the_service(session: Session, make_config, action: str, status: str) -> None:
    job = service.create_job(session, make_config(), submit=False)
    job.status = status  # put it there directly: this test is about the actions, not the path
    session.commit()
    run = getattr(service, f"{action}_job")
    if JobStatus(status) in ACTIONS[action]:
        run(session, job.id)
    else:
        with pytest.raises(TunelabError) as info:
            run(session, job.id)
        assert info.value.code in ("illegal_transition", "conflict")
