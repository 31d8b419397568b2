"""API fixtures: an app on the test's own home, a store session factory, jobs in any state."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tunelab.api import create_app
from tunelab.settings import Settings

CHAT_ROWS = [
    {"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": f"{i}!"}]}
    for i in range(12)
]


@pytest.fixture
def settings(tunelab_home: Path) -> Settings:
    return Settings(home=tunelab_home)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    """The app served over real HTTP (uvicorn on a free loopback port), for real clients."""
    from tests.api.live import thread_server

    with thread_server(create_app(settings)) as url:
        yield url


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    from tunelab.store.db import session_factory

    return session_factory(settings.resolved_database_url)


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHAT_ROWS))
    return path


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response has ``status`` and the one error shape with ``code``, a message and a hint."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert error["message"] and isinstance(error["message"], str)
    assert error["hint"] and isinstance(error["hint"], str)
    return error


# How a job gets to each state: the service for user actions, set_status for the worker's moves.
PATHS: dict[str, list[str]] = {
    "created": [],
    "queued": ["queued"],
    "running": ["queued", "running"],
    "paused": ["queued", "running", "paused"],
    "completed": ["queued", "running", "completed"],
    "failed": ["queued", "running", "failed"],
    "cancelled": ["cancelled"],
}


@pytest.fixture
def make_job(sessions: sessionmaker[Session], chat_file: Path) -> Callable[[str], str]:
    from tunelab.jobs.events import set_status
    from tunelab.jobs.service import create_job, get_job

    def make(status: str) -> str:
        with sessions() as session:
            config = {"model": "tiny-model", "dataset": str(chat_file), "hyperparameters": {"max_steps": 2}}
            job = create_job(session, config, name=f"job-{status}", submit=False)
            for step in PATHS[status]:
                set_status(session, get_job(session, job.id), step)
                session.commit()
            return job.id

    return make
