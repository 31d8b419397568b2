"""Schemathesis over the sweeps routes only (the whole-API fuzz test walks them too, slowly):
no input makes a 500 and every answer's status is documented, with a sweep stored."""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis.generation import GenerationMode
from tests.api.conftest import chat_file, make_job, sessions, settings
from tests.api.test_fuzz_schema import api_schema, fuzz_operation

__all__ = ["api_schema", "chat_file", "make_job", "sessions", "settings"]


@pytest.mark.slow
def test_sweep_routes_answer_only_documented_statuses(api_schema: Any, tunelab_home, sweep_request) -> None:
    from tunelab.store.db import session_factory
    from tunelab.sweeps import service

    with session_factory(f"sqlite:///{tunelab_home / 'tunelab.db'}")() as session:
        service.create_sweep(session, sweep_request(n_trials=2))
    failures, tried = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api/sweeps"):
            continue
        tried += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = fuzz_operation(operation, mode)
            if failure:
                failures.append(failure)
    assert tried == 10, tried
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)
