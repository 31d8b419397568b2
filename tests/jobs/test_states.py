"""The state machine table: every allowed transition passes, every other one is a 409."""

from __future__ import annotations

import itertools

import pytest

from tunelab.errors import IllegalTransition, InvalidInput, http_status
from tunelab.jobs.states import TRANSITIONS, JobStatus, check_transition, parse_priority

ALLOWED = {
    ("created", "queued"),
    ("created", "cancelled"),
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "paused"),
    ("running", "queued"),
    ("paused", "queued"),
    ("paused", "cancelled"),
}
PAIRS = list(itertools.product([s.value for s in JobStatus], repeat=2))


def test_table_matches_design() -> None:
    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transitions_pass(current: str, target: str) -> None:
    check_transition("job-x", current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in PAIRS if p not in ALLOWED])
def test_illegal_transitions_raise_409_with_allowed_list(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition("job-x", current, target)
    error = info.value
    assert http_status(error) == 409
    assert error.code == "illegal_transition"
    expected = sorted(t for c, t in ALLOWED if c == current)
    assert error.details["allowed"] == expected
    assert error.details["status"] == current and error.details["target"] == target
    assert error.hint
    body = error.to_dict()
    assert set(body) >= {"code", "message", "hint"}


def test_terminal_states() -> None:
    assert {s for s in JobStatus if s.is_terminal()} == {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


def test_priorities() -> None:
    assert [parse_priority(p) for p in ("high", "MEDIUM", "low", 0, 2)] == [0, 1, 2, 0, 2]
    with pytest.raises(InvalidInput) as info:
        parse_priority("urgent")
    assert info.value.details["allowed"] == ["high", "medium", "low"]
