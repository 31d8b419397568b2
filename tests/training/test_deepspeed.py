"""DeepSpeed ZeRO-2 in the engine's loop: preflight, and two real ranks under torchrun on the CPU (gloo).

DeepSpeed is optional (CI does not install it): every test here skips without it.
The slow tests launch ``python -m tunelab.training.launch`` as the CLI and the
worker do, on the tiny model; steps are held with ``TUNELAB_TEST_HOOKS`` so a
pause lands mid-run however fast the machine is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl
from tests.training.test_distributed import _launch, _losses, _pause_when_held, _write_run
from tests.training.test_fsdp import _measure_alone

from tunelab.training.config import TrainConfig

pytest.importorskip("deepspeed")

ZERO2 = {"strategy": "deepspeed", "nproc_per_node": 2, "zero_stage": 2}


def _errors(config: TrainConfig) -> dict[str, Any]:
    from tunelab.training.preflight import preflight

    return {issue.code: issue for issue in preflight(config) if issue.level == "error"}


def test_preflight_passes_zero2_on_two_cpu_processes(make_config: Callable[..., TrainConfig]) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    assert _errors(make_config(distributed=ZERO2)) == {}


def test_preflight_refuses_what_the_loop_does_not_run(make_config: Callable[..., TrainConfig]) -> None:
    found = _errors(make_config(distributed={**ZERO2, "zero_stage": 3, "offload_params": True}))
    assert found["deepspeed_stage_not_run"].field == "distributed.zero_stage"
    assert "strategy: fsdp" in found["deepspeed_stage_not_run"].hint
    assert "deepspeed_offload_not_run" in found
    found = _errors(make_config(optimizer="adafactor", distributed=ZERO2))
    assert found["deepspeed_optimizer"].field == "optimizer"


@pytest.mark.slow
def test_zero2_two_processes_pause_resume_and_the_adapter_loads_alone(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """Loss falls, checkpoints land, a pause resumes at its step, metrics come from rank 0 only."""
    config = make_config(save_steps=3, distributed=ZERO2)
    run = _write_run(tmp_path / "run", config)
    watcher = _pause_when_held(run, 5)
    assert _launch(run, {"TUNELAB_TEST_HOOKS": "step@5=15"}) == 75
    watcher.join()
    events = read_jsonl(run / "events.jsonl")
    paused = [e for e in events if e["type"] == "paused"]
    assert len(paused) == 1  # both ranks stopped after the same step; rank 0 reported it
    at = paused[0]["data"]["step"]
    assert at in (5, 6)
    assert (run / "checkpoints" / f"checkpoint-{at}" / "manifest.json").exists()

    assert _launch(run) == 0
    events = read_jsonl(run / "events.jsonl")
    assert len([e for e in events if e["type"] == "started"]) == 2  # one per launch: rank 0 alone writes
    resumed = [e for e in events if e["type"] == "resumed"]
    assert resumed and resumed[0]["data"]["step"] == at
    losses = _losses(run)  # no duplicate lines across the pause
    assert sorted(losses) == list(range(1, 9)) and losses[8] < losses[1]
    assert (run / "train-rank1.log").exists()
    # the consolidated optimizer state is the one-process layout: one entry per adapter tensor
    import torch

    blob = torch.load(run / "checkpoints" / "checkpoint-6" / "training_state.pt", weights_only=False)
    trainable = blob["trainable"]
    state = blob["optimizer"]["state"]
    assert len(state) == len(trainable)
    shapes = sorted(tuple(t.shape) for t in trainable.values())
    assert sorted(tuple(s["exp_avg"].shape) for s in state.values()) == shapes
    assert all(float(s["exp_avg_sq"].abs().sum()) > 0 for s in state.values())

    evaluation = json.loads((run / "output" / "evaluation.json").read_text())
    alone = _measure_alone(config, run / "output", tmp_path / "alone")
    assert alone["eval_loss"] == pytest.approx(evaluation["tuned"]["eval_loss"], rel=1e-4)


def _grad_norms(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["grad_norm"] for m in read_jsonl(run_dir / "metrics.jsonl") if m.get("type") == "train"}


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2])
def test_zero_matches_one_process_and_resumes_on_another_count(
    make_config: Callable[..., TrainConfig], tmp_path: Path, stage: int
) -> None:
    """Two ZeRO ranks train the one-process curve (accumulation and clipping); paused on two, it ends on one."""
    from tunelab.training import run_training

    fields = {"precision": "fp32", "save_steps": 0, "batch_size": 4, "gradient_accumulation_steps": 2,
              "max_grad_norm": 0.2, "output": {"evaluate": False}}  # fmt: skip
    alone = run_training(make_config(**fields), tmp_path / "alone")
    assert alone.status == "completed"
    expected = _losses(tmp_path / "alone")
    norms = _grad_norms(tmp_path / "alone")
    assert max(norms.values()) > 0.2  # clipping takes part in the comparison

    run = _write_run(tmp_path / "zero", make_config(**fields, distributed={**ZERO2, "zero_stage": stage}))
    watcher = _pause_when_held(run, 4)
    assert _launch(run, {"TUNELAB_TEST_HOOKS": "step@4=15"}) == 75
    watcher.join()
    assert _launch(run, nproc=1) == 0  # a consolidated checkpoint resumes with any process count
    found = _losses(run)
    assert sorted(found) == sorted(expected)
    for step, loss in expected.items():
        assert found[step] == pytest.approx(loss, rel=2e-3), step
    found_norms = _grad_norms(run)  # DeepSpeed's norm before clipping is the one-process norm
    for step in range(1, 4):
        assert found_norms[step] == pytest.approx(norms[step], rel=2e-3), step


@pytest.mark.slow
def test_sigterm_stops_every_zero2_rank_at_a_consolidated_checkpoint(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """Cancel or timeout (SIGTERM to the process group): the ranks agree, rank 0 saves, the code is 75."""
    import signal
    import subprocess
    import sys
    import time

    run = _write_run(tmp_path / "run", make_config(save_steps=0, output={"evaluate": False}, distributed=ZERO2))
    env = {**os.environ, "TUNELAB_TEST_HOOKS": "step@3=10"}
    proc = subprocess.Popen([sys.executable, "-m", "tunelab.training.launch", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while not (run / "hook-step-3").exists() and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=300) == 75
    finally:
        proc.kill()
    paused = [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "paused"]
    assert len(paused) == 1 and paused[0]["data"]["reason"] == "SIGTERM"
    checkpoint = run / "checkpoints" / f"checkpoint-{paused[0]['data']['step']}"
    assert (checkpoint / "manifest.json").exists() and (checkpoint / "adapter_model.safetensors").exists()
