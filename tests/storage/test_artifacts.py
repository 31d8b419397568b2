"""The artifact storage on a local folder and on S3 (moto's server), and a run mirrored through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.storage.s3 import S3_ENV, s3_endpoint

from tunelab.jobs.artifact_sync import RunSync
from tunelab.settings import Settings
from tunelab.storage import ArtifactStorage, StorageError, open_storage
from tunelab.training.checkpoint import verify_checkpoint, write_manifest


@pytest.fixture(params=["folder", "s3"])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    if request.param == "folder":
        yield Settings(home=tmp_path / "home", artifacts_url=str(tmp_path / "shared"))
        return
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    with s3_endpoint("artifacts") as endpoint:
        yield Settings(home=tmp_path / "home", artifacts_url="s3://artifacts/team-a",
                       artifacts_endpoint_url=endpoint)  # fmt: skip


def _checkpoint(run_dir: Path, step: int) -> Path:
    """A checkpoint folder as the engine leaves it: weights, state, manifest last."""
    folder = run_dir / "checkpoints" / f"checkpoint-{step}"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "weights.bin").write_bytes(bytes(range(256)) * (step + 1))
    (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
    write_manifest(folder)
    return folder


def test_no_url_means_local_only(tmp_path: Path) -> None:
    assert open_storage(Settings(home=tmp_path)) is None


def test_folders_round_trip_and_count_only_when_whole(settings: Settings, tmp_path: Path) -> None:
    storage = open_storage(settings)
    assert isinstance(storage, ArtifactStorage)
    source = _checkpoint(tmp_path / "run", 3)
    assert storage.children("runs/j/checkpoints") == [] and not storage.complete(
        "runs/j/checkpoints/checkpoint-3"
    )
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "weights.bin").write_bytes(b"x")
    storage.put_dir(
        tmp_path / "half", "runs/j/checkpoints/checkpoint-1"
    )  # no manifest: never whole
    assert storage.put_dir(source, "runs/j/checkpoints/checkpoint-3") > 256
    assert storage.children("runs/j/checkpoints") == ["checkpoint-1", "checkpoint-3"]
    assert storage.complete("runs/j/checkpoints/checkpoint-3") and not storage.complete(
        "runs/j/checkpoints/checkpoint-1"
    )
    target = tmp_path / "elsewhere" / "checkpoint-3"
    target.parent.mkdir()
    storage.get_dir("runs/j/checkpoints/checkpoint-3", target)
    assert verify_checkpoint(target) is None  # every byte as uploaded (sizes and sha256)
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "checkpoint-3"
    ]  # no temporary folder left
    with pytest.raises(StorageError, match="nothing stored"):
        storage.get_dir("runs/j/checkpoints/checkpoint-9", tmp_path / "none")


def test_a_run_resumes_elsewhere_from_its_newest_uploaded_checkpoint(
    settings: Settings, tmp_path: Path
) -> None:
    storage = open_storage(settings)
    assert storage is not None
    first = tmp_path / "worker-a" / "job-1"
    _checkpoint(first, 2)
    _checkpoint(first, 4)
    partial = (
        first / "checkpoints" / "checkpoint-6"
    )  # the engine is still writing it: no manifest yet
    (partial / "adapter").mkdir(parents=True)
    (partial / "trainer_state.json").write_text("{}")
    sync_a = RunSync(storage, "job-1", first)
    assert sync_a.upload_checkpoints() == [2, 4]
    assert sync_a.upload_checkpoints() == []  # each once
    (first / "output").mkdir()
    (first / "output" / "summary.json").write_text('{"ok": true}')
    sync_a.flush(output=True)
    kinds = [note["type"] for note in sync_a.drain_notes()]
    assert kinds == ["checkpoint_uploaded", "checkpoint_uploaded", "output_uploaded"]

    second = tmp_path / "worker-b" / "job-1"
    sync_b = RunSync(storage, "job-1", second)
    assert sync_b.remote_steps() == [2, 4]
    assert sync_b.restore() == 4
    assert verify_checkpoint(second / "checkpoints" / "checkpoint-4") is None
    (note,) = sync_b.drain_notes()
    assert note["type"] == "checkpoint_downloaded" and note["data"]["step"] == 4
    assert sync_b.restore() is None  # the local copy is as new as the stored one
    assert sync_b.upload_checkpoints() == []  # and it is not sent back
    assert storage.children("runs/job-1/output") == ["summary.json"]


def test_an_unreachable_store_is_reported_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("s3fs")
    from tests.api.live import free_port

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    dead = Settings(home=tmp_path, artifacts_url="s3://nowhere/x", artifacts_endpoint_url=f"http://127.0.0.1:{free_port()}",
                    artifacts_options={"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}})  # fmt: skip
    storage = open_storage(dead)
    assert storage is not None
    _checkpoint(tmp_path / "run", 1)
    sync = RunSync(storage, "job-x", tmp_path / "run")
    assert sync.upload_checkpoints() == []
    (note,) = sync.drain_notes()
    assert note["type"] == "artifact_upload_failed" and "checkpoint-1" in note["message"]
    assert "stays in" in note["message"]
