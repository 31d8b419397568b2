"""Interventions through the control file, on the tiny model: checkpoint now, a new learning
rate, stop early; plus the metrics the loop adds (samples/s, MFU, update-to-weight ratio)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl

from tunelab.training import run_training
from tunelab.training.stopping import Command, ControlChannel, parse_line, write_control


class WriteAt:
    """A Reporter that writes control lines when step ``step`` is logged (as the worker would)."""

    def __init__(self, run_dir: Path, step: int, commands: list[Command]) -> None:
        self.run_dir, self.step, self.commands = run_dir, step, commands

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        if metrics.get("type") == "train" and metrics["step"] == self.step:
            write_control(self.run_dir / "control", self.commands)


def _events(run: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_jsonl(run / "events.jsonl") if e["type"] == kind]


def _train(run: Path) -> dict[int, dict[str, Any]]:
    return {m["step"]: m for m in read_jsonl(run / "metrics.jsonl") if m["type"] == "train"}


def test_checkpoint_now_keeps_training(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = make_config(epochs=2, output={"evaluate": False})  # 4 steps per epoch, save_steps=0
    result = run_training(config, run, WriteAt(run, 2, [Command("checkpoint", id=1)]))
    assert result.status == "completed" and result.global_step == 8
    # Written after step 2 was logged, read at the end of step 3: the next step boundary.
    saved = _events(run, "checkpoint_saved")
    assert [(e["data"]["step"], e["data"]["requested"]) for e in saved] == [(3, True)]
    assert (run / "checkpoints" / "checkpoint-3" / "adapter_model.safetensors").exists()
    # The worker rewrites the file with the same id: it is not applied twice.
    assert len(saved) == 1


def test_learning_rate_change_applies_at_the_next_step(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = make_config(epochs=2, scheduler="constant", learning_rate=5e-3, output={"evaluate": False})
    result = run_training(config, run, WriteAt(run, 2, [Command("learning_rate", id=4, value=1e-4)]))
    assert result.status == "completed"
    changed = _events(run, "learning_rate_changed")
    assert len(changed) == 1
    assert changed[0]["data"] == {"step": 3, "from": 5e-3, "to": 1e-4, "applies_from_step": 4, "request_id": 4}
    lrs = {step: m["learning_rate"] for step, m in _train(run).items()}
    assert all(math.isclose(lrs[s], 5e-3) for s in (1, 2))
    assert all(math.isclose(lrs[s], 1e-4) for s in range(3, 9))  # the rate logged is the next step's


def test_learning_rate_rescales_a_decaying_schedule_and_refuses_out_of_range(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = make_config(epochs=3, scheduler="linear", output={"evaluate": False})
    commands = [Command("learning_rate", id=1, value=1.0), Command("learning_rate", id=2, value=2e-3)]
    assert run_training(config, run, WriteAt(run, 2, commands)).status == "completed"
    warning = [e for e in _events(run, "warning") if e["data"].get("code") == "learning_rate_out_of_range"]
    assert len(warning) == 1 and warning[0]["data"]["request_id"] == 1
    lrs = [m["learning_rate"] for _, m in sorted(_train(run).items())]
    assert math.isclose(lrs[2], 2e-3)  # set at step 3 for step 4
    assert all(a > b for a, b in itertools.pairwise(lrs[2:]))  # still decaying, from the new rate
    assert math.isclose(lrs[-1], 0.0, abs_tol=1e-12)


def test_stop_early_completes_with_the_current_weights(make_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = make_config(epochs=3, output={"evaluate": False})
    result = run_training(config, run, WriteAt(run, 2, [Command("stop_early", id=9)]))
    assert (result.status, result.exit_code, result.global_step) == ("completed", 0, 3)
    assert (run / "output" / "adapter_model.safetensors").exists()
    stopped = _events(run, "stopped_early")
    assert stopped[0]["data"] == {"step": 3, "planned_steps": 12, "total_steps": 3, "request_id": 9}
    kinds = [e["type"] for e in read_jsonl(run / "events.jsonl")]
    assert kinds.index("stopped_early") < kinds.index("output_saved") < kinds.index("completed")
    last = _train(run)[3]
    assert last["eta_s"] == 0  # the last line says the run is done


def test_metrics_carry_samples_per_second_mfu_and_update_ratio(make_config, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNELAB_PEAK_FLOPS", "1e12")
    run = tmp_path / "run"
    config = make_config(epochs=1, logging_steps=2, output={"evaluate": False})
    assert run_training(config, run).status == "completed"
    lines = _train(run)
    assert sorted(lines) == [2, 4]
    for line in lines.values():
        assert line["samples_per_second"] > 0
        assert 0 < line["mfu"] < 1
        assert 0 < line["update_ratio"] < 1
    # samples/s over tokens/s is the mean sequence length's inverse: 8 rows per step here
    started = _events(run, "started")[0]["data"]
    assert started["peak_flops"] == 1e12 and started["peak_flops_source"] == "TUNELAB_PEAK_FLOPS"


def test_no_mfu_on_a_cpu_without_a_known_peak(make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNELAB_PEAK_FLOPS", raising=False)
    run = tmp_path / "run"
    assert run_training(make_config(epochs=1, output={"evaluate": False}), run).status == "completed"
    assert all("mfu" not in m for m in _train(run).values())
    assert _events(run, "started")[0]["data"]["peak_flops"] is None


def test_control_lines() -> None:
    assert parse_line("pause") == "pause"
    assert parse_line('{"id": 3, "action": "checkpoint"}') == Command("checkpoint", 3)
    assert parse_line("learning_rate 1e-4") == Command("learning_rate", None, 1e-4)
    assert parse_line("stop-early") == Command("stop_early")
    for bad in ("", "explode", '{"action": "learning_rate", "value": "x"}', "learning_rate -1",
                '{"id": "a", "action": "checkpoint"}', "[1]", "learning_rate nan"):
        assert parse_line(bad) is None, bad
    assert parse_line(Command("learning_rate", 5, 2e-4).line()) == Command("learning_rate", 5, 2e-4)


def test_channel_applies_each_id_once_and_hand_lines_once(tmp_path: Path) -> None:
    path = tmp_path / "control"
    channel = ControlChannel(path)
    assert channel.poll() == []
    write_control(path, [Command("checkpoint", 1)])
    assert channel.poll() == [Command("checkpoint", 1)]
    write_control(path, [Command("checkpoint", 1), Command("stop_early", 2)])
    assert channel.poll() == [Command("stop_early", 2)]
    write_control(path, [Command("checkpoint", 1), Command("stop_early", 2)], pause=True)
    assert channel.poll() == [] and channel.pause
    other = ControlChannel(tmp_path / "by-hand")
    (tmp_path / "by-hand").write_text("checkpoint\n")
    assert other.poll() == [Command("checkpoint")]
    assert not (tmp_path / "by-hand").exists()  # consumed: applied once
