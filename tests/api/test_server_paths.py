"""Files stay inside: jobs, configurations and the OpenAI routes name data and models, never server paths.

Every covered field (``configuration.dataset``, ``hyperparameters.eval_dataset``,
``resume_from``, ``model``, ``training_file``, ``validation_file``) given an
absolute or a relative server path is a 422 ``path_not_allowed`` whose body is
the same whether the file exists or not; an admin with
``TUNELAB_ALLOW_SERVER_PATHS`` may name a path inside an allowed folder only;
no answer carries the server's absolute paths, and nothing is written outside
the home.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import Settings

BUILTIN = "smollm2-135m-instruct"
FEW = {"max_steps": 1}


@pytest.fixture
def closed(settings: Settings) -> Iterator[TestClient]:
    """The app with no allowed roots: the local admin may name no server path at all."""
    with TestClient(create_app(settings.model_copy(update={"allow_server_paths": []}))) as test_client:
        yield test_client


@pytest.fixture
def stored(closed: TestClient, chat_file: Path) -> str:
    """A stored dataset's version id (uploaded, so it is a name the API accepts)."""
    with chat_file.open("rb") as handle:
        answer = closed.post("/api/datasets", files={"file": ("chat.jsonl", handle)}, data={"name": "chat"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["version"]["id"])


def _outside(tmp_path: Path, home: Path) -> list[str]:
    """Every file under the test's folder that is not in the home (to prove nothing was written there)."""
    return sorted(str(p) for p in tmp_path.rglob("*") if home not in p.parents and p != home)


def _bodies(chat_file: Path, stored: str) -> dict[str, tuple[str, Callable[[str], dict[str, Any]]]]:
    """Field -> (route, body naming the path ``p`` in that field, everything else valid)."""
    return {
        "configuration.dataset": ("/api/jobs", lambda p: {
            "configuration": {"model": BUILTIN, "dataset": p, "hyperparameters": FEW}}),
        "configuration.dataset {uid}": ("/api/jobs", lambda p: {
            "configuration": {"model": BUILTIN, "dataset": {"uid": p, "name": "no such name"},
                              "hyperparameters": FEW}}),
        "hyperparameters.eval_dataset": ("/api/jobs", lambda p: {
            "configuration": {"model": BUILTIN, "dataset": stored, "hyperparameters": {**FEW, "eval_dataset": p}}}),
        "hyperparameters.resume_from": ("/api/jobs", lambda p: {
            "configuration": {"model": BUILTIN, "dataset": stored, "hyperparameters": {**FEW, "resume_from": p}}}),
        "model": ("/api/jobs", lambda p: {
            "configuration": {"model": p, "dataset": stored, "hyperparameters": FEW}}),
        "training_file": ("/v1/fine_tuning/jobs", lambda p: {"model": BUILTIN, "training_file": p}),
        "validation_file": ("/v1/fine_tuning/jobs", lambda p: {
            "model": BUILTIN, "training_file": stored, "validation_file": p}),
        "model (openai)": ("/v1/fine_tuning/jobs", lambda p: {"model": p, "training_file": stored}),
        "configuration save": ("/api/configurations", lambda p: {
            "model": BUILTIN, "dataset": p, "hyperparameters": FEW}),
    }  # fmt: skip


def test_every_covered_field_refuses_server_paths_the_same_whether_they_exist_or_not(
    closed: TestClient, stored: str, chat_file: Path, tiny_model_dir: Path, tmp_path: Path, tunelab_home: Path
) -> None:
    before = _outside(tmp_path, tunelab_home)
    for field, (route, body) in _bodies(chat_file, stored).items():
        model_like = field.startswith("model") or field.endswith("resume_from")
        existing = tiny_model_dir if model_like else chat_file
        pairs = [  # (an existing path, a missing one), absolute and relative
            (str(existing), str(existing.parent / "missing-thing")),
            ("./" + existing.name, "./missing-thing"),
            (f"../{existing.parent.name}/{existing.name}", f"../{existing.parent.name}/missing-thing"),
            ("~/../../" + str(existing).lstrip("/"), "~/missing-thing"),
        ]
        for present, missing in pairs:
            answers = [closed.post(route, json=body(value)) for value in (present, missing)]
            errors = [assert_error(answer, 422, "path_not_allowed") for answer in answers]
            assert answers[0].json() == answers[1].json(), (field, present, missing)
            assert str(existing) not in answers[0].text and str(tmp_path) not in answers[0].text
            assert "upload" in errors[0]["hint"]
    assert closed.get("/api/jobs").json()["count"] == 0
    assert closed.get("/api/configurations").json()["count"] == 0
    assert _outside(tmp_path, tunelab_home) == before  # nothing written outside the home


def test_dataset_file_names_are_not_looked_up_on_the_server(closed: TestClient, chat_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A bare file name gets one answer, whatever the server's current folder holds."""
    monkeypatch.chdir(chat_file.parent)
    body = {"configuration": {"model": BUILTIN, "dataset": "chat.jsonl", "hyperparameters": FEW}}
    exists = closed.post("/api/jobs", json=body)
    monkeypatch.chdir(chat_file.parent.parent)
    missing = closed.post("/api/jobs", json=body)
    assert exists.status_code == missing.status_code == 422
    assert exists.json() == missing.json()


def test_admin_may_name_paths_inside_the_allowed_roots_only(settings: Settings, tmp_path: Path,
                                                            chat_file: Path) -> None:  # fmt: skip
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    inside = allowed / "train.jsonl"
    inside.write_bytes(chat_file.read_bytes())
    (allowed / "escape.jsonl").symlink_to(chat_file)  # inside by name, outside once resolved
    app = create_app(settings.model_copy(update={"allow_server_paths": [allowed]}))
    with TestClient(app) as client:
        def job(dataset: str) -> Any:
            return client.post("/api/jobs", json={
                "configuration": {"model": BUILTIN, "dataset": dataset, "hyperparameters": FEW}})  # fmt: skip

        created = job(str(inside))
        assert created.status_code == 201, created.text
        assert created.json()["config"]["dataset"] == str(inside.resolve())
        for refused in (str(chat_file), str(allowed / "escape.jsonl"), str(allowed / ".." / "chat.jsonl"),
                        "allowed/train.jsonl"):  # fmt: skip
            error = assert_error(job(refused), 422, "path_not_allowed")
            assert "TUNELAB_ALLOW_SERVER_PATHS" in error["message"]
        missing = assert_error(job(str(allowed / "nope.jsonl")), 422, "config_invalid")  # inside: may be told
        assert "neither a stored dataset nor an existing file" in missing["message"]


def test_a_train_token_names_no_path_even_with_allowed_roots(settings: Settings, tmp_path: Path,
                                                             chat_file: Path) -> None:  # fmt: skip
    from tests.api.test_security import _token

    open_settings = settings.model_copy(update={"allow_server_paths": [tmp_path], "require_token": True})
    train, admin = _token(open_settings, "train"), _token(open_settings, "admin")
    with TestClient(create_app(open_settings)) as client:
        body = {"configuration": {"model": BUILTIN, "dataset": str(chat_file), "hyperparameters": FEW}}
        refused = client.post("/api/jobs", json=body, headers={"Authorization": f"Bearer {train}"})
        assert "upload" in assert_error(refused, 422, "path_not_allowed")["hint"]
        allowed = client.post("/api/jobs", json=body, headers={"Authorization": f"Bearer {admin}"})
        assert allowed.status_code == 201, allowed.text


def test_answers_carry_no_absolute_server_path(closed: TestClient, chat_file: Path, tunelab_home: Path) -> None:
    with chat_file.open("rb") as handle:
        uploaded = closed.post("/api/datasets", files={"file": ("chat.jsonl", handle)}, data={"name": "chat"})
    assert uploaded.status_code == 201
    version = uploaded.json()["version"]
    assert version["path"].startswith("datasets/") and not Path(version["path"]).is_absolute()
    dataset_id = uploaded.json()["id"]
    for answer in (uploaded, closed.get(f"/api/datasets/{dataset_id}"), closed.get(f"/api/datasets/{dataset_id}/versions")):
        assert str(tunelab_home) not in answer.text and str(tunelab_home.resolve()) not in answer.text
    with chat_file.open("rb") as handle:
        file = closed.post("/v1/files", files={"file": ("chat.jsonl", handle)}, data={"purpose": "fine-tune"})
    assert file.status_code == 200 and str(tunelab_home) not in file.text


def test_models_routes_refuse_server_paths(closed: TestClient, tiny_model_dir: Path) -> None:
    for present, missing in ((str(tiny_model_dir), str(tiny_model_dir.parent / "missing")), ("./x", "./missing")):
        for route in ("/api/models/info", "/api/models/available"):
            answers = [closed.get(route, params={"name": value}) for value in (present, missing)]
            assert_error(answers[0], 422, "path_not_allowed")
            assert answers[0].json() == answers[1].json()
        added = [closed.post("/api/models", json={"id": value, "name": "x"}) for value in (present, missing)]
        assert_error(added[0], 422, "path_not_allowed")
        assert added[0].json() == added[1].json()


def test_the_local_cli_and_examples_still_name_paths(tunelab_home: Path) -> None:
    """In-process callers (``tunelab serve --example``, the CLI) keep any path, stored absolute."""
    from tunelab.cli.serve import queue_example
    from tunelab.jobs import service
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home, allow_server_paths=[])
    examples = Path(__file__).resolve().parents[2] / "examples"
    job_id = queue_example(settings, examples / "identity-lora.yaml")
    assert job_id
    with session_factory(settings.resolved_database_url)() as session:
        job = service.get_job(session, job_id)
        assert job.config["dataset"] == str((examples / "data" / "identity.json").resolve())
        retried_config = dict(job.config)
    from tunelab.jobs.paths import ADMITTED
    from tunelab.jobs.trainconfig import build_train_config

    with session_factory(settings.resolved_database_url)() as session:  # what the worker writes
        assert build_train_config(session, retried_config, paths=ADMITTED)["dataset"] == retried_config["dataset"]
