"""Dataset versions through the shared storage: stored on one machine, staged and verified on another.

Each "machine" is its own home on one store (a SQLite file both point to, as
``TUNELAB_DATABASE_URL`` does), sharing a folder or an S3 endpoint (moto's
server mode). Without a storage URL nothing is copied, as on one machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from tests.storage.s3 import S3_ENV, s3_endpoint

from tunelab.datasets.shared import key
from tunelab.errors import ConfigError, DatasetError, http_status
from tunelab.jobs import datasets as dataset_service
from tunelab.settings import Settings
from tunelab.storage import ArtifactStorage, StorageError, open_storage
from tunelab.store.db import init_db, session_factory


@pytest.fixture(params=["folder", "s3"])
def shared(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The settings that name the shared storage: a folder every machine mounts, or an S3 bucket."""
    if request.param == "folder":
        yield {"artifacts_url": str(tmp_path / "shared")}
        return
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    with s3_endpoint("studio") as endpoint:  # moto keeps its buckets per process: one prefix per test
        yield {"artifacts_url": f"s3://studio/{tmp_path.name}", "artifacts_endpoint_url": endpoint}


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    init_db(url)
    return url


@pytest.fixture
def sessions(database: str) -> sessionmaker[Session]:
    return session_factory(database)


def _machine(tmp_path: Path, name: str, database: str, shared: dict[str, Any] | None) -> Settings:
    """One machine's settings: its own home, the common store, the shared storage (or none)."""
    return Settings(home=tmp_path / f"home-{name}", database_url=database, **(shared or {}))


def _storage(settings: Settings) -> ArtifactStorage:
    storage = open_storage(settings)
    assert storage is not None
    return storage


def _versions(settings: Settings) -> list[str]:
    """Every entry of a home's datasets folder, temporary ones included."""
    root = settings.datasets_dir
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_version_stored_on_one_machine_is_staged_on_another(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], shared: dict[str, str], dataset_file: Path
) -> None:  # fmt: skip
    api, worker = (_machine(tmp_path, name, database, shared) for name in ("api", "worker"))
    with sessions() as session:
        _, version = dataset_service.ingest(session, dataset_file, name="numbers", settings=api)
    assert _storage(api).complete(key(version.id))  # written with the version, manifest last
    assert _versions(worker) == []
    with sessions() as session:
        path = Path(dataset_service.resolve(session, "numbers", settings=worker))
        assert path == (worker.datasets_dir / version.id / "records.jsonl").resolve()  # this machine's copy
        assert path.read_bytes() == Path(version.path).read_bytes()
        rows, total = dataset_service.read_rows(session, "numbers", settings=worker, limit=1)
    assert total == 40 and rows[0].messages[0].content == "Say the number 0."
    assert _versions(worker) == [version.id]  # nothing half-staged left beside it


def test_a_repair_on_another_machine_is_shared_and_a_delete_removes_the_copies(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], shared: dict[str, str]
) -> None:  # fmt: skip
    api, worker = (_machine(tmp_path, name, database, shared) for name in ("api", "worker"))
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["  padded  ", "same", "same", "other"]))
    with sessions() as session:
        _, first = dataset_service.ingest(session, texts, name="texts", settings=api)
        repaired, report = dataset_service.repair(session, "texts", settings=worker)  # stages the parent first
        assert repaired.parent_id == first.id and report.duplicates_removed
        assert _storage(api).complete(key(repaired.id))
        rows, _ = dataset_service.read_rows(session, "texts", settings=api)  # staged back on the API's machine
        assert rows[0].text == "padded"
        dataset_service.delete(session, "texts", settings=api)
    assert not _storage(api).exists(key(first.id)) and not _storage(api).exists(key(repaired.id))


def test_a_workers_train_config_reads_every_dataset_of_the_job_from_its_own_home(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], shared: dict[str, str], dataset_file: Path,
    make_config: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The dataset, the eval_dataset and each dataset_mix entry: what the supervisor writes to config.json."""
    from tunelab.jobs import service
    from tunelab.jobs.trainconfig import build_train_config
    from tunelab.settings import get_settings

    api, worker = (_machine(tmp_path, name, database, shared) for name in ("api", "worker"))
    files = {name: tmp_path / f"{name}.jsonl" for name in ("held-out", "extra")}
    for name, path in files.items():
        path.write_text("".join(json.dumps({"text": f"{name} {i}"}) + "\n" for i in range(6)))
    with sessions() as session:
        ids = {name: dataset_service.ingest(session, path, name=name, settings=api)[1].id for name, path in files.items()}
        ids["numbers"] = dataset_service.ingest(session, dataset_file, name="numbers", settings=api)[1].id
        job = service.create_job(session, make_config(dataset="numbers", eval_dataset="held-out",
                                                      dataset_mix=[{"dataset": "extra", "share": 0.5}]), submit=False)  # fmt: skip
    monkeypatch.setenv("TUNELAB_HOME", str(worker.home))  # the worker process's own settings
    for field in ("artifacts_url", "artifacts_endpoint_url"):
        if field in shared:
            monkeypatch.setenv(f"TUNELAB_{field.upper()}", shared[field])
    get_settings.cache_clear()
    with sessions() as session:
        train = build_train_config(session, job.config, name=job.id)
    mine = {name: str((worker.datasets_dir / version / "records.jsonl").resolve()) for name, version in ids.items()}
    assert train["dataset"] == mine["numbers"] and train["eval_dataset"] == mine["held-out"]
    assert train["dataset_mix"][0]["dataset"] == mine["extra"]
    assert _versions(worker) == sorted(ids.values())


def test_a_damaged_shared_copy_is_refused_and_storing_the_file_again_repairs_it(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], shared: dict[str, str], dataset_file: Path
) -> None:  # fmt: skip
    api, worker = (_machine(tmp_path, name, database, shared) for name in ("api", "worker"))
    with sessions() as session:
        _, version = dataset_service.ingest(session, dataset_file, name="numbers", settings=api)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(Path(version.path).read_text().replace("number 7.", "number 8."))
    _storage(api).put_file(tampered, f"{key(version.id)}/records.jsonl")

    with sessions() as session, pytest.raises(DatasetError) as caught:
        dataset_service.resolve(session, "numbers", settings=worker)
    error = caught.value
    assert error.code == "dataset_corrupt"
    assert f"the shared copy of dataset version {version.id}" in error.message
    assert "is damaged: its records hash to ds-" in error.message and "`tunelab datasets import FILE`" in error.hint
    assert _versions(worker) == []  # the bad copy never reached the datasets folder

    with sessions() as session:  # storing the same file again uploads a good copy over the bad one
        dataset_service.ingest(session, dataset_file, name="numbers", settings=api)
        path = dataset_service.resolve(session, "numbers", settings=worker)
    assert Path(path).read_bytes() == Path(version.path).read_bytes()


def test_a_version_stored_before_the_storage_existed_is_uploaded_when_a_job_names_it(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], shared: dict[str, str], dataset_file: Path
) -> None:  # fmt: skip
    alone = _machine(tmp_path, "api", database, None)
    api, worker = (_machine(tmp_path, name, database, shared) for name in ("api", "worker"))
    with sessions() as session:
        _, version = dataset_service.ingest(session, dataset_file, name="numbers", settings=alone)
    assert not _storage(api).exists(key(version.id))
    with sessions() as session, pytest.raises(ConfigError) as caught:
        dataset_service.resolve(session, version.id, settings=worker)
    assert "nor stored whole in the shared storage" in caught.value.message
    assert "the same content gets the same version id" in caught.value.hint
    with sessions() as session:
        assert dataset_service.admit(session, "numbers", settings=api) == "numbers"  # what a new job stores
        assert _storage(api).complete(key(version.id))
        assert Path(dataset_service.resolve(session, version.id, settings=worker)).is_file()


def test_an_unreachable_storage_is_a_clear_error_and_registers_nothing(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    pytest.importorskip("s3fs")
    from tests.api.live import free_port

    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    closed = {"artifacts_url": "s3://studio/team", "artifacts_endpoint_url": f"http://127.0.0.1:{free_port()}",
              "artifacts_options": {"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}}
    api = _machine(tmp_path, "api", database, closed)
    with sessions() as session, pytest.raises(StorageError) as caught:
        dataset_service.ingest(session, dataset_file, name="numbers", settings=api)
    assert caught.value.code == "storage_unavailable" and http_status(caught.value) == 503
    assert "Could not connect to the endpoint URL" in caught.value.message
    assert "TUNELAB_ARTIFACTS_URL" in caught.value.hint
    with sessions() as session:
        assert dataset_service.list_datasets(session)[1] == 0
    assert _versions(api) == []  # the version folder written before the upload is gone again


def test_without_a_storage_url_nothing_is_copied(
    tmp_path: Path, database: str, sessions: sessionmaker[Session], dataset_file: Path
) -> None:  # fmt: skip
    api, worker = (_machine(tmp_path, name, database, None) for name in ("api", "worker"))
    assert open_storage(api) is None
    with sessions() as session:
        _, version = dataset_service.ingest(session, dataset_file, name="numbers", settings=api)
        # one disk: the file where it was stored, no copy in the other home
        assert dataset_service.resolve(session, "numbers", settings=worker) == str(Path(version.path).resolve())
    assert _versions(worker) == [] and not (tmp_path / "shared").exists()


# -- a real worker process on another home ------------------------------------------------------------


def _upload(client: Any, path: Path, name: str) -> str:
    with path.open("rb") as handle:
        answer = client.post("/api/datasets", files={"file": (path.name, handle)}, data={"name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()["version"]["id"]


def _job(client: Any, model: Path, dataset: str) -> str:
    hyper = {"max_steps": 2, "max_length": 96, "batch_size": 2, "save_steps": 0, "output": {"evaluate": False}}
    answer = client.post("/api/jobs", json={"configuration": {"model": str(model), "dataset": dataset,
                                                              "hyperparameters": hyper}})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _finished(client: Any, job_ids: list[str], worker: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        jobs = {job_id: client.get(f"/api/jobs/{job_id}").json() for job_id in job_ids}
        if all(job["status"] in ("completed", "failed") for job in jobs.values()):
            return jobs
        assert worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"the jobs did not finish: {log.read_text()[-3000:]}")


@pytest.mark.slow
def test_a_worker_with_its_own_home_trains_on_a_dataset_uploaded_to_the_api(
    tmp_path: Path, database: str, tiny_model_dir: Path, dataset_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    from fastapi.testclient import TestClient
    from tests.api.live import env_for, stop

    from tunelab.api import create_app

    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": f"line {i} of another set"}) + "\n" for i in range(20)))
    with s3_endpoint("studio") as endpoint:
        shared = {"artifacts_url": f"s3://studio/{tmp_path.name}", "artifacts_endpoint_url": endpoint}
        api, worker_home = _machine(tmp_path, "api", database, shared), tmp_path / "home-worker"
        with TestClient(create_app(api)) as client:
            good = _upload(client, dataset_file, "numbers")
            bad = _upload(client, other, "other")
            damaged = tmp_path / "damaged.jsonl"
            damaged.write_bytes(b"")  # the object emptied in the bucket
            _storage(api).put_file(damaged, f"{key(bad)}/records.jsonl")
            jobs = [_job(client, tiny_model_dir, "numbers"), _job(client, tiny_model_dir, "other")]
            log = tmp_path / "worker.log"
            env = env_for(worker_home) | S3_ENV | {
                "TUNELAB_DATABASE_URL": database, "TUNELAB_ARTIFACTS_URL": shared["artifacts_url"],
                "TUNELAB_ARTIFACTS_ENDPOINT_URL": endpoint,
            }  # fmt: skip
            with log.open("ab") as out:
                worker = subprocess.Popen([sys.executable, "-m", "tunelab.jobs.worker", "--tick-s", "0.3"],
                                          env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            try:
                done = _finished(client, jobs, worker, log)
            finally:
                stop(worker)
            outputs = _storage(api).children(f"runs/{jobs[0]}/output")

    trained, refused = done[jobs[0]], done[jobs[1]]
    assert trained["status"] == "completed", trained.get("error")
    staged = (worker_home / "datasets" / good / "records.jsonl").resolve()
    assert staged.read_bytes() == (api.datasets_dir / good / "records.jsonl").read_bytes()
    config = json.loads((worker_home / "runs" / jobs[0] / "config.json").read_text())
    assert config["dataset"] == str(staged)  # the engine read the worker's own copy
    assert "adapter_config.json" in outputs

    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "dataset_corrupt"
    assert f"the shared copy of dataset version {bad}" in refused["error"]["message"]
    assert "its records hash to" in refused["error"]["message"]
    assert "`tunelab datasets import FILE`" in refused["error"]["hint"]
    assert not (worker_home / "datasets" / bad).exists()
    assert "Traceback" not in log.read_text()
