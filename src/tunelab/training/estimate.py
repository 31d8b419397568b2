"""Estimates from a config alone: which devices fit, largest batch, time, cost, cheapest within a budget.

Nothing here loads weights. Memory is the one formula (``methods.estimate_for``
over ``tunelab.models.memory``), asked once per device at the precision that
device would use. Time comes from tokens per second:

* on this machine's CPU, from a calibration run stored in the tunelab home
  (``tunelab.training.calibration``; ``tunelab estimate --calibrate`` makes
  one): seconds per step = fixed part per micro-batch + tokens x time per
  token (scaled by FLOPs per token when the model or method differs) + the
  optimizer's time per trainable parameter, plus the first step's warm-up;
* on a GPU, from its dense peak (``tunelab.training.flops.PEAK_FLOPS``, the
  table MFU uses) times an assumed utilisation (``mfu``, 0.3 by default),
  divided by the model's FLOPs per token.

Evaluation passes that are part of the run (every ``eval_steps``, and the base
and tuned measurements of ``output.evaluate``) are added at forward-pass cost
(2N + 2Vd FLOPs per token) over the eval rows; checkpoint saves are not timed.

The GPU table (memory, bf16 support, on-demand and spot prices per hour) is
``DEFAULT_GPUS``; ``<home>/gpus.yaml`` overrides prices or adds GPUs (see
docs/estimates.md). Prices are typical cloud list prices per GPU hour in USD
at the time of writing: change them to your provider's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunelab.errors import InvalidInput
from tunelab.models.memory import GIB, MemoryEstimate, complete_info
from tunelab.settings import get_settings
from tunelab.training import methods

if TYPE_CHECKING:
    from tunelab.models.catalog import ModelInfo
    from tunelab.training.config import TrainConfig

EFFECTIVE_BATCH = 32  # the batch the accumulation keeps, whatever fits per step
MAX_BATCH = 64  # TrainConfig's upper bound for batch_size
Pricing = Literal["on_demand", "spot"]


class Gpu(BaseModel):
    """One GPU type a job could rent: memory CUDA reports, bf16 support, prices per hour."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, description="Label, e.g. A100-80GB.")
    memory_gib: float = Field(gt=0, le=4096, description="Memory one GPU offers, GiB.")
    bf16: bool = Field(True, description="Native bf16 (T4 has none: fp16 there).")
    device_name: str = Field(
        "", max_length=100, description="CUDA device name matched in the FLOPs peak table."
    )
    peak_tflops: float | None = Field(
        None, gt=0, description="Dense half-precision peak; overrides the table."
    )
    on_demand_per_hour: float = Field(ge=0, description="On-demand price per GPU hour.")
    spot_per_hour: float = Field(ge=0, description="Spot / preemptible price per GPU hour.")


class HardwareCatalog(BaseModel):
    """What ``<home>/gpus.yaml`` may say: an assumed utilisation and GPUs (new, or overriding by name)."""

    model_config = ConfigDict(extra="forbid")

    mfu: float = Field(
        0.3, gt=0, le=1, description="Share of the GPU's peak a training step reaches."
    )
    currency: str = Field("USD", max_length=10, description="Currency of the prices.")
    gpus: list[Gpu] = Field(default_factory=list, description="GPU types, in table order.")


def _gpu(name: str, gib: float, bf16: bool, device: str, on_demand: float, spot: float) -> Gpu:
    return Gpu(name=name, memory_gib=gib, bf16=bf16, device_name=device,
               on_demand_per_hour=on_demand, spot_per_hour=spot)  # fmt: skip


DEFAULT_GPUS: tuple[Gpu, ...] = (
    _gpu("T4-16GB", 15.0, False, "Tesla T4", 0.53, 0.16),
    _gpu("A10G-24GB", 22.5, True, "NVIDIA A10", 1.01, 0.36),
    _gpu("L4-24GB", 22.5, True, "NVIDIA L4", 0.80, 0.28),
    _gpu("A100-40GB", 40.0, True, "NVIDIA A100-SXM4-40GB", 3.67, 1.15),
    _gpu("A100-80GB", 80.0, True, "NVIDIA A100-SXM4-80GB", 4.10, 1.60),
    _gpu("H100-80GB", 79.6, True, "NVIDIA H100 80GB HBM3", 6.98, 2.50),
    _gpu("H200-141GB", 140.4, True, "NVIDIA H200", 10.60, 3.80),
)


def catalog_path() -> Path:
    return get_settings().home / "gpus.yaml"


def load_catalog(path: Path | None = None) -> HardwareCatalog:
    """The default table with ``gpus.yaml`` applied: same name replaces, a new name is appended."""
    path = path or catalog_path()
    catalog = HardwareCatalog(gpus=list(DEFAULT_GPUS))
    if not path.exists():
        return catalog
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
        user = HardwareCatalog.model_validate(data)
    except (yaml.YAMLError, ValidationError, TypeError) as error:
        raise InvalidInput(
            f"{path} is not a valid GPU table: {str(error).splitlines()[0]}",
            hint="See docs/estimates.md for its fields (mfu, currency, gpus: name, memory_gib, prices).",
        ) from None
    by_name = {gpu.name: gpu for gpu in catalog.gpus}
    for gpu in user.gpus:
        by_name[gpu.name] = gpu
    fields = user.model_dump(exclude_unset=True, exclude={"gpus"})
    return catalog.model_copy(update={**fields, "gpus": list(by_name.values())})


class DeviceEstimate(BaseModel):
    """The config on one device: memory, whether it fits, the batch that fits, time and cost."""

    name: str = Field(description="Device label.")
    kind: Literal["cpu", "gpu"] = Field(description="cpu (this machine's RAM) or gpu.")
    own: bool = Field(description="This machine's device (else a GPU one could rent).")
    precision: str = Field(description="Compute precision this device would use.")
    memory_bytes: int = Field(description="Memory the device offers (RAM: total).")
    needed_bytes: int = Field(description="Estimated peak at the config's batch size.")
    fits: bool = Field(description="needed_bytes <= memory_bytes.")
    largest_batch_size: int = Field(description="Largest batch size that fits (0: not even 1).")
    gradient_accumulation_steps: int = Field(
        description="Accumulation that keeps an effective batch of 32."
    )
    effective_batch_size: int = Field(
        description="min(largest_batch_size, 32) x accumulation: 32, or 0 when nothing fits."
    )
    tokens_per_second: float | None = Field(description="Training throughput; None when unknown.")
    step_seconds: float | None = Field(
        None, description="Seconds per optimizer step; None when unknown."
    )
    eval_hours: float | None = Field(None, description="Part of ``hours`` spent evaluating.")
    throughput_source: str = Field(description="Where the throughput comes from.")
    hours: float | None = Field(description="Training time for the config's tokens.")
    on_demand_per_hour: float = Field(description="Price per hour on demand (0 for own devices).")
    spot_per_hour: float = Field(description="Price per hour on spot (0 for own devices).")
    cost_on_demand: float | None = Field(description="hours x on-demand price.")
    cost_spot: float | None = Field(description="hours x spot price.")


class BudgetChoice(BaseModel):
    """The cheapest GPU configuration that fits the budget."""

    device: str = Field(description="GPU label.")
    pricing: Pricing = Field(description="on_demand or spot.")
    batch_size: int = Field(description="Sequences per micro-batch.")
    gradient_accumulation_steps: int = Field(description="Micro-batches per step.")
    gradient_checkpointing: bool = Field(description="Whether checkpointing is needed to fit.")
    needed_bytes: int = Field(description="Estimated peak memory.")
    hours: float = Field(description="Training time.")
    cost: float = Field(description="hours x price.")
    considered: int = Field(
        description="Configurations compared (GPU x pricing x batch x checkpointing)."
    )


class Estimate(BaseModel):
    """Everything ``POST /api/estimate`` and ``tunelab estimate`` report for one config."""

    model: str = Field(description="The config's model.")
    method: str = Field(description="The config's method.")
    parameters: int = Field(description="All parameters.")
    trainable_parameters: int = Field(description="Parameters the optimizer updates.")
    memory: MemoryEstimate = Field(
        description="The split at the config's settings on this machine."
    )
    steps: int | None = Field(description="Optimizer steps (max_steps, or epochs over rows).")
    tokens_per_row: int = Field(
        description="Tokens per sequence assumed (max_length unless given)."
    )
    total_tokens: int | None = Field(description="Tokens trained on.")
    flops_per_token: float = Field(
        description="Model FLOPs per trained token (forward and backward)."
    )
    currency: str = Field(description="Currency of the prices.")
    devices: list[DeviceEstimate] = Field(description="This machine, then the GPU table.")
    budget: float | None = Field(description="The budget asked about.")
    cheapest: BudgetChoice | None = Field(description="Cheapest configuration within the budget.")
    notes: list[str] = Field(description="What the numbers assume or lack.")


def flops_per_token(info: ModelInfo, config: TrainConfig) -> float:
    """``training.flops``'s rule from catalog facts: 4N + 2T for the body, the head per logit.

    N is the body (all but embeddings and head), T its trainable part; gradient
    checkpointing recomputes the forward pass (another 2N). Every token is
    counted as a target (the upper bound).
    """
    info = complete_info(info)
    head = (info.vocab_size or 0) * (info.hidden_size or 0)
    # the blocks' linear layers when known (right for tied embeddings too), else all but embeddings and head
    body = (
        info.linear_parameters
        if info.linear_parameters is not None
        else max((info.parameters or 0) - 2 * head, 0)
    )
    spec = methods.get(config.method)
    trainable = (
        body if spec.trains_full_weights else min(methods.trainable_parameters(config, info), body)
    )
    per_token = 4.0 * body + 2.0 * trainable + (2.0 * body if _checkpointing(config, info) else 0.0)
    return per_token + (6 if spec.trains_full_weights else 4) * head


def _checkpointing(config: TrainConfig, info: ModelInfo) -> bool:
    """Whether the forward pass is recomputed: the config's choice, ``auto`` as the memory estimate decides it.

    Selective checkpointing recomputes only elementwise ops, no matmul: not counted.
    """
    mode = config.gradient_checkpointing
    if mode == "auto":
        mode = methods.estimate_for(config, info).gradient_checkpointing
    return mode is True


def forward_flops_per_token(info: ModelInfo) -> float:
    """FLOPs of a forward pass per token (evaluation): 2N for the body, 2Vd for the head."""
    info = complete_info(info)
    head = (info.vocab_size or 0) * (info.hidden_size or 0)
    body = (
        info.linear_parameters
        if info.linear_parameters is not None
        else max((info.parameters or 0) - 2 * head, 0)
    )
    return 2.0 * body + 2.0 * head


def eval_tokens(config: TrainConfig, rows: int | None, per_row: int, steps: int | None) -> int:
    """Tokens the run's evaluations read: passes (every eval_steps, base and tuned) x eval rows x tokens."""
    if not steps or not rows or config.eval_split <= 0:
        return 0
    eval_rows = min(max(1, round(rows * config.eval_split)), config.eval_max_rows)
    passes = (steps // config.eval_steps if config.eval_steps else 0) + (
        2 if config.output.evaluate else 0
    )
    return passes * eval_rows * per_row


def gpu_precision(config: TrainConfig, gpu: Gpu) -> str:
    """The precision ``auto`` would pick on ``gpu`` (``tunelab.models.precision``'s rule)."""
    from tunelab.models.precision import choose_precision

    spec = methods.get(config.method)
    return choose_precision(config.precision, device="cuda", native_bf16=gpu.bf16,
                            full_weights=spec.trains_full_weights, quantized=spec.quantized)  # fmt: skip


def _with(config: TrainConfig, **fields: Any) -> TrainConfig:
    return config.model_copy(update=fields)


def largest_batch(config: TrainConfig, info: ModelInfo, precision: str | None, memory: int) -> int:
    """Largest batch size (1..64) whose estimate fits ``memory``; 0 when not even 1 fits."""

    def fits(batch: int) -> bool:
        return (
            methods.estimate_for(
                _with(config, batch_size=batch), info, precision=precision
            ).total_bytes
            <= memory
        )

    low, high = 0, MAX_BATCH
    while low < high:  # activations grow with the batch, so the test is monotone
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def accumulation(batch: int) -> int:
    """Micro-batches per step so that batch x accumulation reaches the effective batch of 32."""
    return math.ceil(EFFECTIVE_BATCH / min(batch, EFFECTIVE_BATCH)) if batch else 0


def _steps(config: TrainConfig, rows: int | None) -> int | None:
    if config.max_steps:
        return config.max_steps
    rows = rows or config.max_rows
    if not rows:
        return None
    train = max(1, round(rows * (1 - config.eval_split)))
    return config.epochs * math.ceil(
        train / (config.batch_size * config.gradient_accumulation_steps)
    )


def gpu_throughput(
    config: TrainConfig, info: ModelInfo, gpu: Gpu, mfu: float
) -> tuple[float | None, str]:
    """Tokens per second on ``gpu``: peak at its precision x mfu / FLOPs per token."""
    from tunelab.training.flops import peak_for

    precision = gpu_precision(config, gpu)
    if gpu.peak_tflops is not None:
        peak, source = gpu.peak_tflops * 1e12, "gpus.yaml peak"
    else:
        found = peak_for(gpu.device_name or gpu.name, precision, override="")
        if found is None:
            return None, "no peak FLOP/s known for this GPU"
        peak, source = found.flops, "flops.PEAK_FLOPS"
    return peak * mfu / flops_per_token(info, config), f"{source} x mfu {mfu:g}"


class Timing(BaseModel):
    """How long a run takes on one device: per step, warm-up, forward tokens per second for evaluation."""

    step_seconds: float | None = None
    tokens_per_step: int = 0
    first_step_extra_s: float = 0.0
    forward_tokens_per_second: float | None = None
    source: str = ""

    def hours(self, steps: int | None, evaluated: int) -> tuple[float | None, float | None]:
        """(total hours, of which evaluating) for ``steps`` steps and ``evaluated`` eval tokens."""
        if not steps or not self.step_seconds:
            return None, None
        evaluating = (
            evaluated / self.forward_tokens_per_second
            if evaluated and self.forward_tokens_per_second
            else 0.0
        )
        return (
            steps * self.step_seconds + self.first_step_extra_s + evaluating
        ) / 3600, evaluating / 3600


def cpu_timing(config: TrainConfig, info: ModelInfo, tokens_per_step: int) -> Timing:
    """This CPU's timing from the stored calibration (``calibration.step_seconds``)."""
    from tunelab.training import calibration

    seconds, model, source = calibration.step_seconds(config, info, tokens_per_step)
    if seconds is None or model is None:
        return Timing(tokens_per_step=tokens_per_step, source=source)
    per_token = seconds / tokens_per_step if tokens_per_step else None
    forward = (
        per_token * forward_flops_per_token(info) / flops_per_token(info, config)
        if per_token
        else None
    )
    return Timing(step_seconds=seconds, tokens_per_step=tokens_per_step, first_step_extra_s=model.first_step_extra_s,
                  forward_tokens_per_second=1 / forward if forward else None, source=source)  # fmt: skip


def gpu_timing(
    config: TrainConfig, info: ModelInfo, gpu: Gpu, mfu: float, tokens_per_step: int
) -> Timing:
    """A GPU's timing from its peak FLOP/s (``gpu_throughput``); no warm-up term."""
    speed, source = gpu_throughput(config, info, gpu, mfu)
    if not speed:
        return Timing(tokens_per_step=tokens_per_step, source=source)
    forward = speed * flops_per_token(info, config) / forward_flops_per_token(info)
    return Timing(step_seconds=tokens_per_step / speed if tokens_per_step else None, tokens_per_step=tokens_per_step,
                  forward_tokens_per_second=forward, source=source)  # fmt: skip


def _device(config: TrainConfig, info: ModelInfo, steps_and_eval: tuple[int | None, int], *, name: str,
            kind: Literal["cpu", "gpu"], own: bool, memory: int, precision: str | None, timing: Timing,
            prices: tuple[float, float] = (0.0, 0.0)) -> DeviceEstimate:  # fmt: skip
    estimate = methods.estimate_for(config, info, precision=precision)
    batch = largest_batch(config, info, precision, memory)
    steps = accumulation(batch)
    hours, eval_hours = timing.hours(*steps_and_eval)
    speed = (
        timing.tokens_per_step / timing.step_seconds
        if timing.step_seconds and timing.tokens_per_step
        else None
    )
    source = timing.source
    return DeviceEstimate(
        name=name, kind=kind, own=own, precision=estimate.precision, memory_bytes=memory,
        needed_bytes=estimate.total_bytes, fits=estimate.total_bytes <= memory, largest_batch_size=batch,
        gradient_accumulation_steps=steps, effective_batch_size=min(batch, EFFECTIVE_BATCH) * steps,
        tokens_per_second=speed, step_seconds=timing.step_seconds, eval_hours=eval_hours,
        throughput_source=source, hours=hours, on_demand_per_hour=prices[0], spot_per_hour=prices[1],
        cost_on_demand=None if hours is None else hours * prices[0],
        cost_spot=None if hours is None else hours * prices[1],
    )  # fmt: skip


def own_devices() -> list[tuple[str, Literal["cpu", "gpu"], int]]:
    """This machine: its RAM, and each CUDA GPU with its total memory."""
    import psutil

    found: list[tuple[str, Literal["cpu", "gpu"], int]] = [
        ("this machine (RAM)", "cpu", psutil.virtual_memory().total)
    ]
    from tunelab.models.precision import cuda_available

    if cuda_available():
        import torch

        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append((f"cuda:{index} {props.name}", "gpu", int(props.total_memory)))
    return found


def cheapest_within(config: TrainConfig, info: ModelInfo, tokens: int, budget: float,
                    catalog: HardwareCatalog) -> BudgetChoice:  # fmt: skip
    """The cheapest (then fastest) GPU, pricing, batch and checkpointing that fits and costs <= budget."""
    if budget <= 0:
        raise InvalidInput(
            "`budget` must be more than 0.", hint="Give the most you would pay, e.g. --budget 20."
        )
    options: list[BudgetChoice] = []
    considered = 0
    for gpu in catalog.gpus:
        speed_of: dict[bool, float | None] = {}
        precision = gpu_precision(config, gpu)
        for checkpointing in (False, True):
            trial = _with(config, gradient_checkpointing=checkpointing)
            speed_of[checkpointing] = gpu_throughput(trial, info, gpu, catalog.mfu)[0]
            speed = speed_of[checkpointing]
            batch = largest_batch(trial, info, precision, int(gpu.memory_gib * GIB))
            for pricing, price in (
                ("on_demand", gpu.on_demand_per_hour),
                ("spot", gpu.spot_per_hour),
            ):
                considered += 1
                if not batch or not speed:
                    continue
                hours = tokens / speed / 3600
                need = methods.estimate_for(
                    _with(trial, batch_size=min(batch, EFFECTIVE_BATCH)), info, precision=precision
                ).total_bytes
                options.append(BudgetChoice(
                    device=gpu.name, pricing=pricing, batch_size=min(batch, EFFECTIVE_BATCH),
                    gradient_accumulation_steps=accumulation(batch),
                    gradient_checkpointing=checkpointing, needed_bytes=need, hours=hours, cost=hours * price,
                    considered=0,
                ))  # fmt: skip
    if not options:
        raise InvalidInput(
            f"`model` {config.model!r} with `method: {config.method}` fits on no GPU in the table, "
            "even at batch size 1 with gradient checkpointing.",
            hint="Use a smaller model, method qlora, a shorter max_length, or add a larger GPU to gpus.yaml.",
            code="does_not_fit",
            details={"field": "model"},
        )
    within = [option for option in options if option.cost <= budget]
    if not within:
        cheapest = min(options, key=lambda o: (o.cost, o.hours))
        raise InvalidInput(
            f"`budget` {budget:g} is too small: the cheapest configuration ({cheapest.device}, "
            f"{cheapest.pricing}) costs {cheapest.cost:.2f}.",
            hint="Raise the budget, train fewer steps or rows, or pick a smaller model.",
            code="over_budget",
            details={"field": "budget", "cheapest_cost": cheapest.cost},
        )
    best = min(within, key=lambda o: (o.cost, o.hours, not o.gradient_checkpointing))
    return best.model_copy(update={"considered": considered})


def _check_fits_somewhere(config: TrainConfig, info: ModelInfo, devices: list[DeviceEstimate],
                          catalog: HardwareCatalog, memory: MemoryEstimate) -> None:  # fmt: skip
    """A model that fits no device at batch size 1, even with gradient checkpointing, is an error."""
    if any(device.largest_batch_size for device in devices):
        return
    smallest = _with(config, batch_size=1, gradient_checkpointing=True)
    for device in devices:
        precision = None if device.own else device.precision
        if (
            methods.estimate_for(smallest, info, precision=precision).total_bytes
            <= device.memory_bytes
        ):
            return
    biggest = max(devices, key=lambda d: d.memory_bytes)
    raise InvalidInput(
        f"`model` {config.model!r} with `method: {config.method}` fits nowhere: it needs "
        f"{memory.total_bytes / GIB:,.1f} GiB, the largest device ({biggest.name}) has "
        f"{biggest.memory_bytes / GIB:,.1f} GiB, even at batch size 1 with gradient checkpointing.",
        hint="Use a smaller model, method qlora or lora, a shorter max_length, or add a larger GPU to gpus.yaml.",
        code="does_not_fit",
        details={"field": "model", "memory": memory.model_dump(mode="json")},
    )


def estimate(config: TrainConfig, info: ModelInfo, *, rows: int | None = None, tokens_per_row: int | None = None,
             budget: float | None = None, catalog: HardwareCatalog | None = None) -> Estimate:  # fmt: skip
    """The full estimate for ``config`` on this machine and on every GPU of the table."""
    if budget is not None and budget <= 0:
        raise InvalidInput("`budget` must be more than 0.", hint="Give the most you would pay, e.g. --budget 20.",
                           details={"field": "budget"})  # fmt: skip
    catalog = catalog or load_catalog()
    per_row = min(tokens_per_row or config.max_length, config.max_length)
    steps = _steps(config, rows)
    per_step = config.batch_size * config.gradient_accumulation_steps * per_row
    tokens = steps * per_step if steps else None
    run = (steps, eval_tokens(config, rows, per_row, steps))
    memory = methods.estimate_for(config, info)
    notes = (
        []
        if tokens_per_row
        else [f"Every row is assumed to be max_length ({config.max_length}) tokens."]
    )
    if steps is None:
        notes.append("No time or cost: give `rows` (training rows) or set `max_steps`.")
    devices = []
    for name, kind, size in own_devices():
        if kind == "cpu":
            devices.append(_device(config, info, run, name=name, kind=kind, own=True, memory=size,
                                   precision=None, timing=cpu_timing(config, info, per_step)))  # fmt: skip
        else:
            gpu = Gpu(
                name=name,
                memory_gib=size / GIB,
                on_demand_per_hour=0,
                spot_per_hour=0,
                device_name=name,
            )
            devices.append(_device(config, info, run, name=name, kind=kind, own=True, memory=size, precision=None,
                                   timing=gpu_timing(config, info, gpu, catalog.mfu, per_step)))  # fmt: skip
    for gpu in catalog.gpus:
        devices.append(_device(
            config, info, run, name=gpu.name, kind="gpu", own=False, memory=int(gpu.memory_gib * GIB),
            precision=gpu_precision(config, gpu), timing=gpu_timing(config, info, gpu, catalog.mfu, per_step),
            prices=(gpu.on_demand_per_hour, gpu.spot_per_hour),
        ))  # fmt: skip
    _check_fits_somewhere(config, info, devices, catalog, memory)
    cheapest = None
    if budget is not None:
        if tokens is None:
            raise InvalidInput("A `budget` needs a length of training: give `rows` or set `max_steps`.",
                               hint="e.g. --rows 5000 or max_steps=1000.", details={"field": "rows"})  # fmt: skip
        cheapest = cheapest_within(config, info, tokens, budget, catalog)
    return Estimate(
        model=config.model, method=config.method, parameters=memory.parameters,
        trainable_parameters=memory.trainable_parameters, memory=memory, steps=steps, tokens_per_row=per_row,
        total_tokens=tokens, flops_per_token=flops_per_token(info, config), currency=catalog.currency,
        devices=devices, budget=budget, cheapest=cheapest, notes=notes,
    )  # fmt: skip
