"""Distributed training: the torchrun command and engine configs, preflight's refusals, DDP under torchrun.

The slow tests start real ranks with ``torchrun --nproc-per-node 2`` on the CPU
(gloo) through ``python -m tunelab.training.launch``, as the CLI and the worker do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl

from tunelab.training.config import DistributedSettings, TrainConfig, load_config_dict
from tunelab.training.distributed import (
    Rank,
    deepspeed_config,
    engine_command,
    printable_command,
    torchrun_command,
)
from tunelab.training.launch import engine_exit_code
from tunelab.training.parallel import shard

# ------------------------------------------------------------------ commands


def test_single_node_command_uses_a_free_port(tmp_path: Path) -> None:
    settings = DistributedSettings(strategy="ddp", nproc_per_node=2)
    command = torchrun_command(settings, tmp_path, python="py")
    assert command == ["py", "-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1",
                       "--standalone", "-m", "tunelab.training", str(tmp_path)]  # fmt: skip
    assert printable_command(settings, tmp_path).startswith(
        "torchrun --nproc-per-node=2 --nnodes=1 --standalone"
    )


def test_multi_node_command_names_the_master(tmp_path: Path) -> None:
    settings = DistributedSettings(strategy="ddp", nproc_per_node=4, nnodes=2, node_rank=1,
                                   master_addr="10.0.0.5", master_port=29400)  # fmt: skip
    args = torchrun_command(settings, tmp_path)
    for expected in ("--nproc-per-node=4", "--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.5",
                     "--master-port=29400"):  # fmt: skip
        assert expected in args
    assert "--standalone" not in args


def test_engine_command_follows_the_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"distributed": {"strategy": "none"}}))
    assert engine_command(tmp_path, python="py") == ["py", "-m", "tunelab.training", str(tmp_path)]
    (tmp_path / "config.json").write_text(
        json.dumps({"distributed": {"strategy": "ddp", "nproc_per_node": 2}})
    )
    assert engine_command(tmp_path, python="py") == [
        "py",
        "-m",
        "tunelab.training.launch",
        str(tmp_path),
    ]


def test_deepspeed_config_from_the_block() -> None:
    settings = DistributedSettings(strategy="deepspeed", nproc_per_node=2, zero_stage=3,
                                   offload_optimizer=True, offload_params=True)  # fmt: skip
    found = deepspeed_config(
        settings, micro_batch=4, accumulation=2, max_grad_norm=1.0, precision="bf16"
    )
    zero = found["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    assert zero["offload_param"]["device"] == "cpu" and found["bf16"]["enabled"] is True
    assert (
        found["train_micro_batch_size_per_gpu"] == 4 and found["gradient_accumulation_steps"] == 2
    )
    two = deepspeed_config(DistributedSettings(strategy="deepspeed"), micro_batch=8, accumulation=1,
                           max_grad_norm=0.5, precision="fp32")  # fmt: skip
    assert (
        two["zero_optimization"]["stage"] == 2 and "offload_param" not in two["zero_optimization"]
    )


def test_deepspeed_accepts_the_generated_config() -> None:
    """DeepSpeed's own config class parses what we generate (stage, offload, derived batch size)."""
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.config import DeepSpeedConfig

    settings = DistributedSettings(
        strategy="deepspeed", zero_stage=3, offload_optimizer=True, offload_params=True
    )
    parsed = DeepSpeedConfig(deepspeed_config(settings, micro_batch=4, accumulation=2, max_grad_norm=1.0,
                                              precision="bf16"))  # fmt: skip
    assert parsed.zero_optimization_stage == 3 and parsed.gradient_clipping == 1.0
    assert (
        parsed.zero_config.offload_param is not None
        and parsed.zero_config.offload_optimizer is not None
    )
    assert parsed.train_batch_size == 8  # 4 x 2 x one process (DeepSpeed's world here)


def test_shards_cover_every_sequence_once() -> None:
    ids = [7, 3, 9, 1, 4]
    shares = [shard(ids, Rank(r, 2)) for r in range(2)]
    assert sorted(shares[0][0] + shares[1][0]) == sorted(ids) and all(w == 1.0 for _, w in shares)
    lone = [shard([5], Rank(r, 3)) for r in range(3)]
    # the ranks without a sequence get a stand-in that weighs 0
    assert lone == [([5], 1.0), ([5], 0.0), ([5], 0.0)]


def test_exit_code_comes_from_rank_zero(tmp_path: Path) -> None:
    since = time.time()
    assert engine_exit_code(0, tmp_path, since) == 0
    assert engine_exit_code(1, tmp_path, since) == 1  # no exit.json: torchrun's own status
    (tmp_path / "exit.json").write_text(json.dumps({"time": since - 60, "exit_code": 75}))
    assert engine_exit_code(1, tmp_path, since) == 1  # a previous launch's file does not count
    (tmp_path / "exit.json").write_text(json.dumps({"time": since + 1, "exit_code": 75}))
    assert engine_exit_code(1, tmp_path, since) == 75


# -------------------------------------------------------------- config rules


@pytest.mark.parametrize(("block", "device", "words"), [
    ({"nproc_per_node": 2}, "auto", "needs a `distributed.strategy`"),
    ({"strategy": "ddp", "offload_params": True}, "auto", "offload_params"),
    ({"strategy": "ddp", "offload_optimizer": True}, "auto", "offload_optimizer"),
    ({"strategy": "ddp", "nnodes": 2, "node_rank": 2}, "auto", "node_rank"),
    ({"strategy": "ddp", "nproc_per_node": 2}, "mps", "mps"),
])  # fmt: skip
def test_config_refuses_impossible_blocks(block: dict[str, Any], device: str, words: str) -> None:
    from tunelab.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config_dict({"dataset": "d.json", "device": device, "distributed": block})
    assert words in caught.value.message


# ------------------------------------------------------------------ preflight


def _codes(config: TrainConfig) -> dict[str, Any]:
    from tunelab.training.preflight import preflight

    return {issue.code: issue for issue in preflight(config) if issue.level == "error"}


def test_preflight_refuses_three_gpus_on_a_cpu_machine(
    make_config: Callable[..., TrainConfig],
) -> None:
    import os

    from tunelab.models.precision import cuda_available

    if cuda_available():
        pytest.skip("this machine has a GPU")
    found = _codes(make_config(device="cuda", distributed={"strategy": "ddp", "nproc_per_node": 3}))
    assert "cuda_unavailable" in found and "`device: cuda`" in found["cuda_unavailable"].message
    many = _codes(
        make_config(distributed={"strategy": "ddp", "nproc_per_node": (os.cpu_count() or 1) + 1})
    )
    assert "not_enough_cores" in many and many["not_enough_cores"].hint.startswith(
        "Set `distributed.nproc_per_node`"
    )


def test_preflight_refuses_nccl_without_cuda(make_config: Callable[..., TrainConfig]) -> None:
    found = _codes(
        make_config(
            device="cpu", distributed={"strategy": "ddp", "nproc_per_node": 2, "backend": "nccl"}
        )
    )
    assert "nccl_needs_cuda" in found and "gloo" in found["nccl_needs_cuda"].hint


def test_preflight_refuses_zero3_offload_without_deepspeed(
    make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as on a machine without it
    block = {"strategy": "deepspeed", "nproc_per_node": 2, "zero_stage": 3, "offload_optimizer": True,
             "offload_params": True}  # fmt: skip
    found = _codes(make_config(distributed=block))
    assert "deepspeed_missing" in found
    assert "ZeRO-3 with CPU offload" in found["deepspeed_missing"].message
    assert "pip install --no-build-isolation deepspeed" in found["deepspeed_missing"].hint


def test_preflight_passes_ddp_on_two_cpu_processes(make_config: Callable[..., TrainConfig]) -> None:
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    assert _codes(make_config(distributed={"strategy": "ddp", "nproc_per_node": 2})) == {}


def test_mps_is_accepted_and_checked(make_config: Callable[..., TrainConfig]) -> None:
    from tunelab.training.hardware import detect_hardware, mps_available

    config = make_config(device="mps")
    hardware = detect_hardware(config)
    assert (hardware.device, hardware.precision) == ("mps", "fp32")  # auto keeps fp32 on MPS
    found = _codes(config)
    if mps_available():
        assert "mps_unavailable" not in found
    else:
        assert "torch.backends.mps.is_available()" in found["mps_unavailable"].message
        assert "arm64 build of PyTorch" in found["mps_unavailable"].hint


def test_print_command_writes_the_config(
    tiny_model_dir: Path, identity_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: {tiny_model_dir}\ndataset: {identity_file}\n"
                      "distributed:\n  strategy: ddp\n  nproc_per_node: 2\n")  # fmt: skip
    run = tmp_path / "run"
    code = "from tunelab.cli.main import run; run()"
    done = subprocess.run([sys.executable, "-c", code, "train", str(config), "--run-dir", str(run),
                           "--print-command"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        f"torchrun --nproc-per-node=2 --nnodes=1 --standalone -m tunelab.training {run}"
        in done.stdout
    )
    assert json.loads((run / "config.json").read_text())["distributed"]["strategy"] == "ddp"
    assert not (run / "metrics.jsonl").exists()  # printed, not run


# ------------------------------------------------------------ torchrun (slow)


def _write_run(run_dir: Path, config: TrainConfig) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.model_dump(mode="json")))
    return run_dir


def _launch(run_dir: Path, env: dict[str, str] | None = None, nproc: int | None = None) -> int:
    """``python -m tunelab.training.launch RUN_DIR`` in a child process, as the worker starts it."""
    import os

    if nproc is not None:
        data = json.loads((run_dir / "config.json").read_text())
        data["distributed"]["nproc_per_node"] = nproc
        (run_dir / "config.json").write_text(json.dumps(data))
    full = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-m", "tunelab.training.launch", str(run_dir)], env=full,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    (run_dir / f"launch-{time.time():.0f}.out").write_text(done.stdout + done.stderr)
    return done.returncode


def _pause_when_held(run_dir: Path, step: int) -> threading.Thread:
    """Write ``pause`` into the control file once the ranks are held in ``step`` (the test hook's marker)."""

    def watch() -> None:
        marker = run_dir / f"hook-step-{step}"
        deadline = time.time() + 300
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.2)
        (run_dir / "control").write_text("pause\n")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _losses(run_dir: Path) -> dict[int, float]:
    lines = [m for m in read_jsonl(run_dir / "metrics.jsonl") if m.get("type") == "train"]
    steps = [m["step"] for m in lines]
    assert len(steps) == len(set(steps)), f"duplicate metric lines: {steps}"
    return {m["step"]: m["loss"] for m in lines}


@pytest.mark.slow
def test_ddp_two_processes_pause_resume(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    config = make_config(save_steps=3, distributed={"strategy": "ddp", "nproc_per_node": 2})
    run = _write_run(tmp_path / "run", config)
    watcher = _pause_when_held(run, 5)
    # paused: the engine's code comes back, not torchrun's 1
    assert _launch(run, {"TUNELAB_TEST_HOOKS": "step@5=15"}) == 75
    watcher.join()
    events = read_jsonl(run / "events.jsonl")
    paused = [e for e in events if e["type"] == "paused"]
    assert len(paused) == 1  # both ranks stopped after the same step; rank 0 reported it
    at = paused[0]["data"]["step"]
    # the step held, or the next one when rank 0 had read the control file already
    assert at in (5, 6)
    assert (run / "checkpoints" / f"checkpoint-{at}" / "manifest.json").exists()
    assert json.loads((run / "exit.json").read_text())["exit_code"] == 75

    assert _launch(run) == 0
    events = read_jsonl(run / "events.jsonl")
    starts = [e for e in events if e["type"] == "started"]
    assert len(starts) == 2  # one per launch: rank 0 alone writes events
    resumed = [e for e in events if e["type"] == "resumed"]
    assert resumed and resumed[0]["data"]["step"] == at
    losses = _losses(run)
    assert sorted(losses) == list(range(1, 9))  # every step once, from rank 0
    assert losses[8] < losses[1]
    assert (run / "output" / "adapter_model.safetensors").exists()
    assert (run / "output" / "summary.json").exists()
    assert (run / "train-rank1.log").exists()
    state = json.loads((run / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["world_size"] == 2


@pytest.mark.slow
def test_ddp_matches_one_process_and_resumes_on_another_count(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """Two ranks train the same curve as one process; a run paused on two resumes on one."""
    from tunelab.training import run_training

    # 29 rows in micro-batches of 4, two per step: the no_sync path, and an epoch's last micro-batch
    # holds one sequence, so the second rank trains a stand-in at weight 0 there
    fields = {"precision": "fp32", "save_steps": 0, "batch_size": 4, "gradient_accumulation_steps": 2,
              "output": {"evaluate": False}}  # fmt: skip
    alone = run_training(make_config(**fields), tmp_path / "alone")
    assert alone.status == "completed"
    expected = _losses(tmp_path / "alone")

    config = make_config(**fields, distributed={"strategy": "ddp", "nproc_per_node": 2})
    run = _write_run(tmp_path / "ddp", config)
    watcher = _pause_when_held(run, 4)
    assert _launch(run, {"TUNELAB_TEST_HOOKS": "step@4=15"}) == 75
    watcher.join()
    assert _launch(run, nproc=1) == 0  # the step plan does not depend on the number of processes
    found = _losses(run)
    assert sorted(found) == sorted(expected)
    for step, loss in expected.items():
        assert found[step] == pytest.approx(loss, rel=2e-3), step


@pytest.mark.slow
def test_deepspeed_zero2_runs_the_generated_config_on_the_cpu(tmp_path: Path) -> None:
    """DeepSpeed's CPU path (gloo) trains with our ZeRO-2 config (the engine's loop under it: test_deepspeed.py)."""
    pytest.importorskip("deepspeed")
    script = Path(__file__).with_name("deepspeed_zero2_run.py")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
                           str(script)], capture_output=True, text=True, timeout=900, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = [
        json.loads(line.split("RESULT ", 1)[1])
        for line in done.stdout.splitlines()
        if "RESULT " in line
    ]
    assert sorted(r["rank"] for r in results) == [0, 1]
    for result in results:
        assert result["stage"] == 2 and result["last"] < result["first"]


@pytest.mark.slow
def test_sigterm_to_the_process_group_stops_every_rank_at_a_checkpoint(
    make_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    """What the worker does on cancel or timeout: SIGTERM to the group; the ranks save and the code is 75."""
    import os
    import signal

    config = make_config(save_steps=0, distributed={"strategy": "ddp", "nproc_per_node": 2})
    run = _write_run(tmp_path / "run", config)
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
    assert (
        run / "checkpoints" / f"checkpoint-{paused[0]['data']['step']}" / "manifest.json"
    ).exists()
