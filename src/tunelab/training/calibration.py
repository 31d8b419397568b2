"""Training speed measured on this machine, stored in the tunelab home and reused by estimates.

A CPU has no honest peak FLOP/s to divide by (cores, clocks, AVX-512, AMX,
memory bandwidth and whatever else runs there all matter), so the time
estimate for this machine comes from a short real run. Tokens per second
measured at one shape do not carry to another: a step costs a fixed part
(Python, logging, the optimizer over the trainable parameters, per-layer
kernel launches) plus a part per token, and on a small model the fixed part
dominates. So ``calibrate``:

1. trains the config's model with its method, precision and batch size through
   the ordinary engine (``run_training``) on synthetic text whose steps hold
   different numbers of tokens (max_length, 1/2 and 1/4 of it, assigned through
   the engine's own epoch plan), and fits ``seconds = fixed + tokens x
   per_token`` over the steps after the first (wall and process CPU time);
2. keeps the first step's extra time (warm-up: allocator, kernel selection);
3. times the engine's optimizer step (gradient clipping, AdamW, zeroing, and the
   bf16 weight casts of autocast where full fine-tuning uses it) over a few
   million parameters, giving seconds per trainable parameter, so a method that
   trains more parameters than the calibrated one (full fine-tuning against
   LoRA) is charged for it.

The entry is appended to ``<home>/calibration.json`` (one per model, method,
precision and checkpointing; the newest wins). ``step_model`` answers from the
closest entry; ``step_seconds`` turns it into seconds for any config: the
per-token part is scaled by FLOPs per token (``estimate.flops_per_token``) when
the model or method differs, the trainable-parameter difference is charged at
the measured rate, and the fixed part counts once per micro-batch.
"""

from __future__ import annotations

import itertools
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError
from tunelab.settings import get_settings

if TYPE_CHECKING:
    from tunelab.models.catalog import ModelInfo
    from tunelab.training.config import TrainConfig

_WORDS = tuple(
    [
        "the",
        "model",
        "learns",
        "a",
        "short",
        "answer",
        "from",
        "every",
        "example",
        "while",
        "the",
        "optimizer",
        "updates",
        "adapters",
        "and",
        "the",
        "loss",
        "falls",
        "slowly",
        "over",
        "steps",
        "because",
        "each",
        "batch",
        "holds",
        "new",
        "words",
        "numbers",
        "names",
        "places",
        "and",
        "ideas",
    ]
)
#: Share of max_length each calibration step's rows hold, cycled after the first (full) step.
STEP_SHARES = (1.0, 0.5, 0.25)
DEFAULT_STEPS = 7
#: Parameters the optimizer micro-benchmark updates (four 1024 x 1024 matrices).
OPTIMIZER_PROBE = (4, 1024, 1024)


def calibration_path() -> Path:
    return get_settings().home / "calibration.json"


def load() -> list[dict[str, Any]]:
    """Every stored measurement (an unreadable file counts as none: it is only a cache)."""
    path = calibration_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        entry.get("model"),
        entry.get("method"),
        entry.get("precision"),
        entry.get("gradient_checkpointing"),
    )


def _store(entry: dict[str, Any]) -> None:
    """Keep the newest measurement per model, method, precision and checkpointing."""
    kept = [old for old in load() if _key(old) != _key(entry)] + [entry]
    path = calibration_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(kept, indent=2))
    temporary.replace(path)


def _precision(config: TrainConfig) -> str:
    from tunelab.models.precision import resolve
    from tunelab.training import methods

    spec = methods.get(config.method)
    return resolve(
        "cpu", config.precision, full_weights=spec.trains_full_weights, quantized=spec.quantized
    ).precision


@dataclass(frozen=True)
class StepModel:
    """Seconds per optimizer step on this machine: fixed + tokens x per_token (+ parameters x rate)."""

    fixed_s: float
    per_token_s: float
    parameter_s: float  # per trainable parameter per step (optimizer, clipping, casts)
    first_step_extra_s: float
    flops_per_token: float  # of the calibrated config: the per-token part scales by the ratio
    trainable_parameters: int  # of the calibrated config: the difference is charged at parameter_s
    source: str

    @classmethod
    def from_entry(cls, entry: dict[str, Any], source: str, cpu: bool = False) -> StepModel:
        """An entry as stored (``cpu``: its process-CPU-time fit); one with tokens/s only has no fixed part."""
        if entry.get("per_token_s") is None:
            return cls(0.0, 1.0 / float(entry["tokens_per_second"]), 0.0, 0.0,
                       float(entry.get("flops_per_token") or 0), 0, source)  # fmt: skip
        kind = "cpu_" if cpu else ""
        return cls(float(entry[f"{kind}fixed_s"]), float(entry[f"{kind}per_token_s"]),
                   float(entry.get(f"{kind}parameter_s") or 0), 0.0 if cpu else float(entry.get("first_step_extra_s") or 0),
                   float(entry.get("flops_per_token") or 0), int(entry.get("trainable_parameters") or 0), source)  # fmt: skip


def step_model(
    config: TrainConfig, info: ModelInfo, cpu: bool = False
) -> tuple[StepModel | None, str]:
    """The closest stored calibration for ``config`` on this CPU, or None and what to run."""
    precision = _precision(config)
    entries = [
        e
        for e in load()
        if e.get("precision") == precision and (e.get("per_token_s") or e.get("tokens_per_second"))
    ]
    if not entries:
        return None, "no calibration on this machine: run `tunelab estimate CONFIG --calibrate`"

    def distance(entry: dict[str, Any]) -> tuple[bool, bool, bool, float]:
        # among other models, the largest one: a tiny model's speed is per-step overhead, not FLOPs
        return (entry.get("model") != config.model, entry.get("method") != config.method,
                entry.get("gradient_checkpointing") != config.gradient_checkpointing,
                -float(entry.get("flops_per_token") or 0))  # fmt: skip

    best = min(entries, key=distance)
    same = not any(distance(best)[:3])
    how = (
        ""
        if same
        else ", per-token time scaled by FLOPs per token, optimizer by trainable parameters"
    )
    source = f"calibration ({best['model']}, {best['method']}, {precision}, {best.get('measured_at', '?')}){how}"
    return StepModel.from_entry(best, source, cpu), source


def step_seconds(config: TrainConfig, info: ModelInfo, tokens_per_step: float,
                 cpu: bool = False) -> tuple[float | None, StepModel | None, str]:  # fmt: skip
    """Seconds per optimizer step of ``config`` with ``tokens_per_step`` tokens (``cpu``: process CPU seconds)."""
    from tunelab.training.estimate import flops_per_token
    from tunelab.training.methods import trainable_parameters

    model, source = step_model(config, info, cpu)
    if model is None:
        return None, None, source
    flops = flops_per_token(info, config)
    scale = flops / model.flops_per_token if model.flops_per_token else 1.0
    extra = model.parameter_s * (trainable_parameters(config, info) - model.trainable_parameters)
    seconds = (
        config.gradient_accumulation_steps * model.fixed_s
        + tokens_per_step * model.per_token_s * scale
        + extra
    )
    return max(seconds, 1e-6), model, source


def cpu_throughput(
    config: TrainConfig, info: ModelInfo, flops_per_token: float | None = None
) -> tuple[float | None, str]:
    """Tokens per second of ``config`` at its own shape (batch x accumulation x max_length)."""
    tokens = config.batch_size * config.gradient_accumulation_steps * config.max_length
    seconds, _, source = step_seconds(config, info, tokens)
    return (None if seconds is None else tokens / seconds), source


def _row_text(row: int, tokens: int) -> str:
    """About ``tokens`` tokens of plain words (one token each for this vocabulary; longer rows are truncated)."""
    return " ".join(_WORDS[(row * 7 + i) % len(_WORDS)] for i in range(max(tokens, 1)))


def _dataset(folder: Path, rows: int, max_length: int, plan: list[list[int]] | None = None) -> Path:
    """Plain-text rows; with the engine's epoch ``plan``, step k's rows hold ``STEP_SHARES`` of max_length."""
    share = [1.0] * rows
    for step, ids in enumerate(plan or []):
        for row in ids:
            share[row] = 1.0 if step == 0 else STEP_SHARES[(step - 1) % len(STEP_SHARES)]
    path = folder / "calibration.jsonl"
    with path.open("w") as handle:
        for row in range(rows):
            tokens = max_length * 2 if share[row] >= 1 else int(max_length * share[row]) - 4
            handle.write(json.dumps({"text": f"{row} {_row_text(row, tokens)}"}) + "\n")
    return path


def fit_line(tokens: list[float], seconds: list[float]) -> tuple[float, float]:
    """(fixed, per_token) of ``seconds = fixed + tokens x per_token``, both >= 0 (least squares)."""
    if len(set(tokens)) < 2:
        return 0.0, statistics.fmean(seconds) / statistics.fmean(tokens)
    slope, intercept = statistics.linear_regression(tokens, seconds)
    if slope <= 0:
        return statistics.fmean(seconds), 0.0  # time does not grow with tokens: all overhead
    if intercept < 0:
        return 0.0, sum(s * t for s, t in zip(seconds, tokens, strict=True)) / sum(
            t * t for t in tokens
        )
    return intercept, slope


def optimizer_seconds_per_parameter(config: TrainConfig, repeats: int = 3) -> tuple[float, float]:
    """(wall, CPU) seconds per trainable parameter of the engine's optimizer step, measured here."""
    import torch

    from tunelab.training import methods
    from tunelab.training.optim import build_optimizer

    count, rows, cols = OPTIMIZER_PROBE
    module = torch.nn.ParameterList(
        [torch.nn.Parameter(torch.randn(rows, cols)) for _ in range(count)]
    )
    grads = [torch.randn(rows, cols) for _ in range(count)]
    optimizer = build_optimizer(config, module)
    autocast = methods.get(config.method).trains_full_weights and _precision(config) != "fp32"
    walls, cpus = [], []
    for index in range(repeats + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        for param, grad in zip(module, grads, strict=True):
            param.grad = grad.clone()  # backward writes a fresh gradient
            if autocast:
                param.detach().to(torch.bfloat16)  # autocast's per-step weight cast
        torch.nn.utils.clip_grad_norm_(list(module), config.max_grad_norm or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index:  # the first round allocates the optimizer state
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    total = count * rows * cols
    return statistics.median(walls) / total, statistics.median(cpus) / total


def _trial(config: TrainConfig, dataset: Path, steps: int) -> TrainConfig:
    return config.model_copy(update={
        "dataset": str(dataset), "dataset_format": None, "dataset_mapping": None, "eval_dataset": None,
        "eval_split": 0.0, "max_rows": None, "epochs": 1, "max_steps": steps, "warmup_steps": 0,
        "logging_steps": 1, "save_steps": 0, "eval_steps": 0, "early_stopping_patience": 0, "report_to": "none",
        "resume_from": None, "device": "cpu", "gradient_accumulation_steps": 1,
        "output": config.output.model_copy(update={"evaluate": False, "eval_generations": 0, "merge_adapter": False}),
    })  # fmt: skip


def measure_steps(config: TrainConfig, steps: int) -> list[dict[str, float]]:
    """Train ``steps`` steps of ``config`` on the shaped synthetic text; per step: tokens, wall and CPU seconds.

    Step 1 is the engine's own time of that step (its CPU time is not known:
    NaN); later steps are the time between their metric lines, as a user sees it.
    """
    from tunelab.training.batching import plan_epoch
    from tunelab.training.run import run_training

    stamps: list[tuple[float, float, int]] = []
    first: list[float] = []  # the engine's own time of step 1 (without loading and setup)

    class Recorder:
        def on_event(self, event: dict[str, Any]) -> None:
            pass

        def on_metrics(self, values: dict[str, Any]) -> None:
            if values.get("type") == "train":
                stamps.append(
                    (time.perf_counter(), time.process_time(), int(values["tokens_seen"]))
                )
                first.append(float(values["elapsed_s"]))

    rows = config.batch_size * (steps + 1)
    plan = plan_epoch(rows, config.batch_size, config.seed, 0)
    with tempfile.TemporaryDirectory(prefix="tunelab-calibration-") as folder:
        trial = _trial(config, _dataset(Path(folder), rows, config.max_length, plan), steps)
        result = run_training(trial, Path(folder) / "run", Recorder())
    if result.status != "completed" or len(stamps) < 2:
        error = result.error or {}
        raise TunelabError(
            f"The calibration run did not complete: {error.get('message', result.status)}",
            hint=error.get("hint")
            or "Run `tunelab train` with the same config to see the failure.",
            code="calibration_failed",
        )
    out = [
        {"tokens": stamps[0][2], "wall_s": first[0], "cpu_s": float("nan")}
    ]  # step 1: the engine's own time
    for before, after in itertools.pairwise(stamps):
        out.append(
            {
                "tokens": after[2] - before[2],
                "wall_s": after[0] - before[0],
                "cpu_s": after[1] - before[1],
            }
        )
    return out


def calibrate(
    config: TrainConfig, info: ModelInfo, *, steps: int = DEFAULT_STEPS
) -> dict[str, Any]:
    """Measure ``config`` here (``steps`` steps, the first as warm-up, plus the optimizer), store and return it."""
    from tunelab.training.estimate import flops_per_token
    from tunelab.training.methods import trainable_parameters

    measured = measure_steps(config, max(steps, 2))
    later = measured[1:]  # the first step warms up (allocator, kernel choice)
    tokens = [float(m["tokens"]) for m in later]
    fixed, per_token = fit_line(tokens, [m["wall_s"] for m in later])
    cpu_fixed, cpu_per_token = fit_line(tokens, [m["cpu_s"] for m in later])
    parameter_s, cpu_parameter_s = optimizer_seconds_per_parameter(config)
    total_tokens, total_seconds = sum(tokens), sum(m["wall_s"] for m in later)
    entry = {
        "model": config.model, "method": config.method, "precision": _precision(config),
        "gradient_checkpointing": config.gradient_checkpointing, "batch_size": config.batch_size,
        "max_length": config.max_length, "steps": len(measured),
        "tokens_per_second": total_tokens / total_seconds,
        "fixed_s": fixed, "per_token_s": per_token, "parameter_s": parameter_s,
        "cpu_fixed_s": cpu_fixed, "cpu_per_token_s": cpu_per_token, "cpu_parameter_s": cpu_parameter_s,
        "first_step_extra_s": max(0.0, measured[0]["wall_s"] - fixed - measured[0]["tokens"] * per_token),
        "trainable_parameters": trainable_parameters(config, info),
        "flops_per_token": flops_per_token(info, config), "measured_steps": later,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    _store(entry)
    return entry
