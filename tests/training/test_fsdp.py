"""FSDP in the engine's loop: preflight, the ``fully_shard`` settings, and two real ranks under torchrun.

The slow tests start ``torchrun --nproc-per-node 2`` on the CPU (gloo) through
``python -m tunelab.training.launch``, as the CLI and the worker do, on the
tiny model; steps are held with ``TUNELAB_TEST_HOOKS`` so a pause lands mid-run
however fast the machine is.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl
from tests.training.test_distributed import _launch, _losses, _pause_when_held, _write_run

from tunelab.training.config import DistributedSettings, TrainConfig
from tunelab.training.distributed import fsdp_settings

FSDP = {"strategy": "fsdp", "nproc_per_node": 2}


def _errors(config: TrainConfig) -> dict[str, Any]:
    from tunelab.training.preflight import preflight

    return {issue.code: issue for issue in preflight(config) if issue.level == "error"}


def test_sharding_choices_map_to_fully_shard() -> None:
    found = {s: fsdp_settings(DistributedSettings(strategy="fsdp", fsdp_sharding=s))
             for s in ("full_shard", "shard_grad_op", "no_shard")}  # fmt: skip
    assert found["full_shard"]["reshard_after_forward"] and not found["full_shard"]["replicate"]
    assert not found["shard_grad_op"]["reshard_after_forward"]
    assert found["no_shard"]["replicate"]


def test_preflight_passes_fsdp_on_two_cpu_processes(make_config: Callable[..., TrainConfig]) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    assert _errors(make_config(distributed=FSDP)) == {}


def test_preflight_refuses_what_fsdp_cannot_hold(make_config: Callable[..., TrainConfig]) -> None:
    found = _errors(make_config(method="qlora", distributed=FSDP))
    assert "fsdp_quantized" in found and "strategy: ddp" in found["fsdp_quantized"].hint


def test_preflight_refuses_deepspeed_when_it_is_not_installed(
    make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop runs ZeRO-1/2 (tests/training/test_deepspeed.py); without the package preflight says so."""
    monkeypatch.setitem(sys.modules, "deepspeed", None)
    found = _errors(make_config(distributed={"strategy": "deepspeed", "nproc_per_node": 2}))
    assert "deepspeed_missing" in found and "strategy: ddp" in found["deepspeed_missing"].hint
    assert found["deepspeed_missing"].field == "distributed.strategy"


def _measure_alone(config: TrainConfig, adapter: Path, run_dir: Path) -> dict[str, Any]:
    """The engine's final measurement in one process, with the adapter FSDP saved loaded into a fresh model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from tunelab.training.output import _measure
    from tunelab.training.rundir import RunFiles
    from tunelab.training.runner import Recipe
    from tunelab.training.stopping import StopSignal

    alone = config.model_copy(update={"distributed": DistributedSettings()})
    files = RunFiles(run_dir, None)
    recipe = Recipe(alone, files, StopSignal(files))
    try:
        recipe.setup()
        set_peft_model_state_dict(recipe.model, load_file(adapter / "adapter_model.safetensors"))
        return _measure(recipe)
    finally:
        files.close()


@pytest.mark.slow
def test_fsdp_two_processes_pause_resume_and_the_adapter_loads_alone(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """Loss falls, checkpoints land, a pause resumes at its step, and the saved adapter is the gathered model."""
    config = make_config(save_steps=3, distributed=FSDP)
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
    state = json.loads((run / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    # the consolidated checkpoint is the one-process layout: plain tensors, whole adapter
    import torch

    blob = torch.load(run / "checkpoints" / "checkpoint-6" / "training_state.pt", weights_only=False)
    lora = {n: t for n, t in blob["trainable"].items() if "lora_A" in n}
    assert lora and all(type(t) is torch.Tensor and t.shape[0] == config.lora.r for t in lora.values())

    evaluation = json.loads((run / "output" / "evaluation.json").read_text())
    alone = _measure_alone(config, run / "output", tmp_path / "alone")
    assert alone["eval_loss"] == pytest.approx(evaluation["tuned"]["eval_loss"], rel=1e-4)
    assert alone["replies"] == [s["tuned"] for s in evaluation["samples"]]


@pytest.mark.slow
def test_fsdp_matches_one_process_and_resumes_on_another_count(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """Two FSDP ranks train the one-process curve (accumulation included); paused on two, it ends on one."""
    from tunelab.training import run_training

    fields = {"precision": "fp32", "save_steps": 0, "batch_size": 4, "gradient_accumulation_steps": 2,
              "output": {"evaluate": False}}  # fmt: skip
    alone = run_training(make_config(**fields), tmp_path / "alone")
    assert alone.status == "completed"
    expected = _losses(tmp_path / "alone")

    run = _write_run(tmp_path / "fsdp", make_config(**fields, distributed=FSDP))
    watcher = _pause_when_held(run, 4)
    assert _launch(run, {"TUNELAB_TEST_HOOKS": "step@4=15"}) == 75
    watcher.join()
    assert _launch(run, nproc=1) == 0  # a consolidated checkpoint resumes with any process count
    found = _losses(run)
    assert sorted(found) == sorted(expected)
    for step, loss in expected.items():
        assert found[step] == pytest.approx(loss, rel=2e-3), step


@pytest.mark.slow
def test_sigterm_stops_every_fsdp_rank_at_a_consolidated_checkpoint(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """Cancel or timeout (SIGTERM to the process group): the ranks gather, rank 0 saves, the code is 75."""
    import signal
    import subprocess
    import time

    run = _write_run(tmp_path / "run", make_config(save_steps=0, output={"evaluate": False}, distributed=FSDP))
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
