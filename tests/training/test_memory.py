"""The engine's memory cuts keep the loss curve, and ``gradient_checkpointing: auto`` decides and says so.

Each change (the chunked LM head and cross-entropy, the allocator settings,
activation checkpointing) is compared with the run without it on the tiny
model in fp32: the first losses must agree. The auto test runs the engine's
own process with a memory cap that the no-checkpointing estimate exceeds and
measures that process's peak RSS against the cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl

GIB = 1024**3


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with 8 layers: with 2, keeping every layer's matmul outputs (selective) is less than
    full checkpointing's one whole layer, and the three estimates would not be in their usual order."""
    from tunelab.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("deep-model"), layers=8)


def _head(vocab: int, hidden: int, dtype: Any) -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(hidden, vocab, bias=False).to(dtype)


@pytest.mark.parametrize("train_head", [False, True])
def test_chunked_head_gives_the_plain_heads_loss_and_gradients(monkeypatch: pytest.MonkeyPatch,
                                                               train_head: bool) -> None:  # fmt: skip
    import torch

    from tunelab.training import loss

    monkeypatch.setattr(loss, "MIN_CHUNK_ROWS", 1)
    head = _head(500, 32, torch.float32).requires_grad_(train_head)
    hidden = torch.randn(123, 32, requires_grad=True)
    targets = torch.randint(0, 500, (123,))
    found = []
    for elements in (0, 500 * 10):  # plain, then chunks of 10 rows (13 chunks, the last one short)
        hidden.grad, head.weight.grad = None, None
        value = loss.head_loss(hidden, head, targets, chunk_elements=elements)
        (value / 123).backward()
        found.append(
            (
                value.detach(),
                hidden.grad.clone(),
                None if head.weight.grad is None else head.weight.grad.clone(),
            )
        )
    (plain, plain_hidden, plain_head), (chunked, chunked_hidden, chunked_head) = found
    assert torch.allclose(plain, chunked, rtol=1e-6)
    assert torch.allclose(plain_hidden, chunked_hidden, rtol=1e-5, atol=1e-9)
    if train_head:
        assert torch.allclose(plain_head, chunked_head, rtol=1e-4, atol=1e-8)  # summed over chunks
    else:
        assert plain_head is None and chunked_head is None


def test_chunked_head_in_bf16_autocast_matches_to_bf16_rounding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from tunelab.training import loss

    monkeypatch.setattr(loss, "MIN_CHUNK_ROWS", 1)
    head = _head(500, 32, torch.bfloat16).requires_grad_(False)
    hidden = torch.randn(77, 32, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 500, (77,))
    found = []
    for elements in (0, 500 * 8):
        hidden.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss.head_loss(hidden, head, targets, chunk_elements=elements)
        value.backward()
        assert hidden.grad.dtype == torch.bfloat16
        found.append((value.detach(), hidden.grad.float()))
    assert torch.allclose(found[0][0], found[1][0], rtol=1e-5)
    assert torch.allclose(
        found[0][1], found[1][1], rtol=1e-2, atol=1e-4
    )  # bf16 has 8 significant bits


def test_chunked_head_without_grad_is_just_the_loss() -> None:
    import torch

    from tunelab.training import loss

    head = _head(300, 16, torch.float32)
    hidden, targets = torch.randn(40, 16), torch.randint(0, 300, (40,))
    with torch.no_grad():
        chunked = loss.head_loss(hidden, head, targets, chunk_elements=300 * 64)
        plain = loss.head_loss(hidden, head, targets, chunk_elements=0)
    assert not chunked.requires_grad
    assert torch.allclose(chunked, plain, rtol=1e-6)


def _losses(run_dir: Path) -> list[float]:
    return [
        line["loss"]
        for line in read_jsonl(run_dir / "metrics.jsonl")
        if line.get("type") == "train"
    ]


def test_each_memory_change_keeps_the_first_losses(make_config: Callable[..., Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from tunelab.training import loss, run_training

    def run(name: str, **overrides: Any) -> list[float]:
        config = make_config(max_steps=3, precision="fp32", eval_split=0.0, output={"evaluate": False,
                             "eval_generations": 0}, **overrides)  # fmt: skip
        result = run_training(config, tmp_path / name)
        assert result.status == "completed", result.error
        return _losses(tmp_path / name)

    monkeypatch.setenv("TUNELAB_ALLOCATOR", "default")
    monkeypatch.setattr(loss, "CHUNK_ELEMENTS", 0)
    before = run("before")
    monkeypatch.setattr(loss, "MIN_CHUNK_ROWS", 1)
    monkeypatch.setattr(
        loss, "CHUNK_ELEMENTS", 512 * 16
    )  # the tiny vocabulary in chunks of 16 targets
    chunked = run("chunked")
    monkeypatch.setenv("TUNELAB_ALLOCATOR", "release")
    allocator = run("allocator")
    selective = run("selective", gradient_checkpointing="selective")
    checkpointed = run("checkpointing", gradient_checkpointing=True)
    assert len(before) == 3
    for name, losses in (
        ("chunked", chunked),
        ("allocator", allocator),
        ("selective", selective),
        ("checkpointing", checkpointed),
    ):
        assert losses == pytest.approx(before, rel=1e-5), name
    assert before[-1] < before[0]
    engine = json.loads((tmp_path / "allocator" / "config.json").read_text())["engine"]
    assert engine["allocator"]["allocator"] == "release"


def test_auto_stays_off_when_the_estimate_fits(make_config: Callable[..., Any], deep_model_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from tunelab.models.resolve import model_info
    from tunelab.training.checkpointing import LIMIT_ENV, choose

    config = make_config(model=str(deep_model_dir), gradient_checkpointing="auto")
    info = model_info(config.model)
    roomy = choose(config.model_copy(update={"memory_limit_gb": 1000.0}), info, "cpu")
    assert not roomy.enabled and "off (auto)" in roomy.message()
    monkeypatch.setenv(LIMIT_ENV, "0.01")  # the environment's cap, when the config names none
    tight = choose(config, info, "cpu")
    assert tight.mode is True and tight.limit_source == LIMIT_ENV and "on (auto)" in tight.message()
    assert "exceed" in tight.message()
    # Between the estimates without checkpointing and with selective: selective, before full checkpointing.
    sizes = (roomy.estimate_with_bytes, roomy.estimate_selective_bytes, roomy.estimate_without_bytes)
    assert sizes[0] < sizes[1] < sizes[2]
    middle = config.model_copy(update={"memory_limit_gb": (sizes[1] + sizes[2]) / 2 / GIB})
    picked = choose(middle, info, "cpu")
    assert picked.mode == "selective" and picked.enabled and "selective (auto)" in picked.message()
    assert (
        choose(config.model_copy(update={"gradient_checkpointing": False}), info, "cpu").enabled
        is False
    )


def _peak_rss_until_exit(process: subprocess.Popen[bytes]) -> int:
    """The engine's own peak RSS (``VmHWM`` of its address space), sampled until it exits.

    Not ``wait4``'s ``ru_maxrss``: Linux carries a process's high-water mark
    across fork and exec, so a child of a large pytest process reports the
    parent's peak (5.4 GiB in the full suite) however small the child is.
    """
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        except (OSError, StopIteration):  # exiting: its address space is gone
            time.sleep(0.02)
            continue
        peak = max(peak, int(line.split()[1]) * 1024)  # kB
        time.sleep(0.02)
    return peak


@pytest.mark.parametrize("expected", [True, pytest.param("selective", marks=pytest.mark.slow)])
def test_auto_turns_checkpointing_on_over_the_cap_and_the_run_stays_under_it(
    make_config: Callable[..., Any], tmp_path: Path, deep_model_dir: Path, expected: bool | str
) -> None:
    from tunelab.models.resolve import model_info
    from tunelab.training.checkpointing import choose

    # Long max_length makes the estimate large; the identity rows themselves are short.
    probe = make_config(model=str(deep_model_dir), max_length=16384, batch_size=8, gradient_checkpointing="auto")
    found = choose(
        probe.model_copy(update={"memory_limit_gb": 1000.0}), model_info(probe.model), "cpu"
    )
    # A cap between full checkpointing's and selective's estimates, or between selective's and none.
    low, high = ((found.estimate_with_bytes, found.estimate_selective_bytes) if expected is True
                 else (found.estimate_selective_bytes, found.estimate_without_bytes))  # fmt: skip
    cap_gb = (low + high) / 2 / GIB
    config = make_config(model=str(deep_model_dir), max_length=16384, batch_size=8, max_steps=2,
                         gradient_checkpointing="auto",
                         memory_limit_gb=round(cap_gb, 3), eval_split=0.0,
                         output={"evaluate": False, "eval_generations": 0})  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(config.model_dump_json())
    process = subprocess.Popen([sys.executable, "-m", "tunelab.training", str(run_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    peak = _peak_rss_until_exit(process)
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == 0, stderr[-2000:]
    events = read_jsonl(run_dir / "events.jsonl")
    choice = next(e for e in events if e["type"] == "gradient_checkpointing")
    said = "on (auto)" if expected is True else "selective (auto)"
    assert said in choice["message"] and "exceed" in choice["message"]
    assert choice["data"]["mode"] == expected and choice["data"]["enabled"] is True
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["gradient_checkpointing"] == expected
    assert peak < cap_gb * GIB, f"peak RSS {peak / GIB:.2f} GiB over the {cap_gb:.2f} GiB cap"
    assert any(e["type"] == "completed" for e in events)
