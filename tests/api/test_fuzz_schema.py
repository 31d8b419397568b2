"""Schemathesis over the whole OpenAPI document: no input makes a 500, every status is documented.

The app runs on the test's own home with the tiny random model in place of the
built-in one (copied to where the built-in is cached), offline, with the
monitor loop off, a dataset stored and jobs in several states, so list answers
hold real rows for the response-schema check. Every built-in check runs
(``not_a_server_error``, status code, content type, headers and response schema
conformance, negative data rejection ...) with a fixed seed and
``MAX_EXAMPLES`` cases per operation in each of schemathesis's positive and
negative modes. ``positive_data_acceptance`` also accepts the 422/424 refusals
of ``SEMANTIC_REFUSALS`` (rules no JSON schema expresses); every other check
runs with its defaults.

Excluded, because they start long work rather than answer a request:

- ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /generate``:
  each generates up to ``max_tokens`` (8,192) tokens per case; their input
  rules are tested in ``test_chat.py`` and ``test_serving_routes.py``.

No worker runs, so jobs the fuzzer creates stay queued and never train.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from tunelab.api import create_app
from tunelab.models.catalog import BUILTIN_MODELS
from tunelab.settings import Settings

MAX_EXAMPLES = 10
SEED = 20261201
EXCLUDED = [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/generate")]
#: Schema-valid requests the services may still refuse, by rules no JSON schema can say: 422 for
#: a file type the readers do not take, a name with control characters, a TrainConfig value out of
#: range inside free-form ``hyperparameters``; 424 for a model not on this (offline) machine.
SEMANTIC_REFUSALS = ["422", "424"]


@pytest.fixture
def api_schema(tunelab_home: Path, tiny_model_dir: Path, chat_file: Path,
               make_job: Callable[[str], str]) -> Any:  # fmt: skip
    """The schema of an app on a seeded home, for schemathesis."""
    from tunelab.jobs import datasets
    from tunelab.store.db import session_factory

    for model_id in BUILTIN_MODELS:  # the tiny model stands in for every built-in
        shutil.copytree(tiny_model_dir, tunelab_home / "models" / model_id)
    config = Settings(home=tunelab_home, offline=True, monitor_interval_s=0, notify_timeout_s=0.5)
    app = create_app(config)
    with session_factory(config.resolved_database_url)() as session:
        datasets.ingest(session, chat_file, name="fuzz-chat", settings=config, tags=["fuzz"])
        session.commit()
    for status in ("queued", "running", "completed", "failed"):
        make_job(status)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.seed = SEED
    schema.config.checks.update(included_check_names=["all"])
    accepted = schema.config.checks.positive_data_acceptance.expected_statuses
    schema.config.checks.positive_data_acceptance.expected_statuses = [*accepted, *SEMANTIC_REFUSALS]
    return schema


def fuzz_operation(operation: Any, mode: GenerationMode) -> str | None:
    """Run ``MAX_EXAMPLES`` cases of one operation in one mode; the first failure, or None."""
    failures: list[str] = []

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if failures:
            return
        try:
            case.call_and_validate()
        except (Exception, FailureGroup) as error:  # a failed check: keep the first, with the request that made it
            failures.append(f"{operation.label} [{mode.value}]: {error}"[:3000])

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without input, in negative mode)
        return None
    return failures[0] if failures else None


@pytest.mark.slow
def test_no_input_makes_a_server_error_or_an_undocumented_status(api_schema: Any) -> None:
    failures, tried = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        tried += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = fuzz_operation(operation, mode)
            if failure:
                failures.append(failure)
    assert tried >= 50, f"only {tried} operations in the schema"
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)
