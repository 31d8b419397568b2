"""Checkpoint manifests: a truncated or unfinished newest checkpoint is skipped and the previous one used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.faults.helpers import (
    HOOKS,
    assert_recovered,
    assert_worker_alive,
    create_job,
    engine_events,
    kill_engine_at,
    run_dir,
    wait_status,
    wait_until,
    worker_thread,
)

from tunelab.training.checkpoint import find_checkpoint, verify_checkpoint, write_manifest


def _checkpoint(folder: Path, step: int, payload: bytes = b"weights" * 100) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(payload)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    write_manifest(path)
    return path


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 2)
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"adapter_model.safetensors", "trainer_state.json"}
    assert manifest["files"]["adapter_model.safetensors"]["size"] == 700
    assert len(manifest["files"]["adapter_model.safetensors"]["sha256"]) == 64
    assert verify_checkpoint(path) is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: (p / "adapter_model.safetensors").write_bytes(b"weights" * 50), "has 350 bytes"),
        (lambda p: (p / "adapter_model.safetensors").write_bytes(b"Xeights" * 100), "sha256"),
        (lambda p: (p / "manifest.json").unlink(), "no manifest.json"),
        (lambda p: (p / "manifest.json").write_text("{"), "cannot be read"),
        (lambda p: (p / "adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
    ],
    ids=["truncated", "changed", "no-manifest", "bad-manifest", "file-missing"],
)
def test_damaged_newest_checkpoint_is_skipped_with_its_reason(tmp_path: Path, damage, reason: str) -> None:
    older, newest = _checkpoint(tmp_path, 2), _checkpoint(tmp_path, 4)
    damage(newest)
    skipped: list[tuple[str, str]] = []
    assert find_checkpoint(tmp_path, "latest", on_skip=lambda p, why: skipped.append((p.name, why))) == older
    assert len(skipped) == 1 and skipped[0][0] == "checkpoint-4" and reason in skipped[0][1], skipped
    assert (tmp_path / "damaged-checkpoint-4").is_dir() and not newest.exists()  # set aside, never picked again
    assert find_checkpoint(tmp_path, None) == older


def test_no_valid_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 2)
    (path / "manifest.json").unlink()
    assert find_checkpoint(tmp_path, "latest") is None


def test_a_damaged_named_checkpoint_is_an_error(tmp_path: Path) -> None:
    from tunelab.errors import TunelabError

    path = _checkpoint(tmp_path, 2)
    (path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(TunelabError) as caught:
        find_checkpoint(tmp_path, "checkpoint-2")
    assert caught.value.code == "checkpoint_damaged" and caught.value.hint


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(
    factory, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """checkpoint-6 is cut in half while the engine is in step 7, then the engine dies (kill -9)."""
    monkeypatch.setenv(HOOKS, "step@7=120")
    job_id = create_job(factory, make_config, tiny_model_dir, max_steps=8, save_steps=2, save_total_limit=3)
    folder = run_dir(tunelab_home, job_id)
    with worker_thread(tunelab_home) as worker:
        wait_until(lambda: (folder / "hook-step-7").exists(), 180, "the engine in step 7")
        state = folder / "checkpoints" / "checkpoint-6" / "training_state.pt"
        data = state.read_bytes()
        state.write_bytes(data[: len(data) // 2])
        kill_engine_at(folder, "hook-step-7")
        wait_status(factory, job_id, ("completed", "failed"))
        assert_worker_alive(worker)
    job = assert_recovered(factory, job_id, status="completed", last_step=8, resumed_from=4)
    assert job.attempts == 2
    skipped = [e for e in engine_events(factory, job_id) if e.get("type") == "checkpoint_skipped"]
    assert len(skipped) == 1 and skipped[0]["data"]["checkpoint"] == "checkpoint-6"
    assert "training_state.pt has" in skipped[0]["message"] and "checkpoint-6" in skipped[0]["message"]
    assert (folder / "checkpoints" / "damaged-checkpoint-6").is_dir()
