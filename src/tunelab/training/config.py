"""TrainConfig: every knob of a training run, with its default, range and help.

One pydantic model feeds the CLI (``key=value`` overrides), the API schema and the
dashboard form. Static, machine-independent rules live in one ``model_validator``
that reports every problem at once; checks that depend on the machine (GPU, disk,
model on disk) are in ``preflight.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunelab.models.precision import RequestedPrecision
from tunelab.training.methods import ADAPTER_LEARNING_RATE, FULL_LEARNING_RATE, Method, names
from tunelab.training.methods import get as method_spec


def _rate(value: float) -> str:
    """Mantissa and exponent (the way learning rates are written in papers and in our docs)."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


class LoraSettings(BaseModel):
    """Low-rank adapter shape, shared by lora, dora, qlora and adalora."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, le=512, description="Adapter rank; higher learns more, costs more.")
    alpha: float = Field(32.0, ge=0.1, le=4096, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(
        0.0, ge=0.0, le=0.5,
        description="Dropout on the adapter input; 0 skips it (about 20% faster on CPU, less memory).",
    )
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear' for every linear layer."
    )


class OutputSettings(BaseModel):
    """What the run leaves in ``output/`` and how it is evaluated."""

    model_config = ConfigDict(extra="forbid")

    merge_adapter: bool = Field(
        False, description="Also save the adapter merged into full weights in output/merged."
    )
    evaluate: bool = Field(True, description="Compare base and tuned model on the eval split at the end.")
    eval_generations: int = Field(
        3, ge=0, le=50, description="How many side-by-side generations (base vs tuned) to save."
    )
    eval_prompts: list[str] = Field(
        default_factory=list, description="Extra prompts for the side-by-side generations."
    )
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Tokens generated per prompt.")


class TrainConfig(BaseModel):
    """A complete, validated description of one fine-tuning run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field("run", min_length=1, max_length=100, description="Run name (used in run folders).")
    model: str = Field(
        "smollm2-135m-instruct", min_length=1, description="Catalog name, local folder or Hub id."
    )
    dataset: str = Field("", description="Required: dataset file (path) or stored dataset version id.")
    dataset_format: str | None = Field(None, description="Force a format; None detects it.")
    dataset_mapping: dict[str, str] | None = Field(
        None, description="Column mapping for the dataset reader, e.g. {'prompt': 'question'}."
    )
    eval_dataset: str | None = Field(None, description="Separate eval file; overrides eval_split.")
    eval_split: float = Field(0.1, ge=0.0, le=0.5, description="Fraction of rows held out for eval.")
    eval_max_rows: int = Field(200, ge=1, le=100_000, description="At most this many eval rows.")
    max_rows: int | None = Field(None, ge=1, description="Use only the first N training rows.")
    system_prompt: str | None = Field(None, description="System message added where a row has none.")
    train_on_prompt: bool = Field(False, description="Also train on system/user turns, not only replies.")

    method: Method = Field("lora", description=f"Fine-tuning method: {', '.join(names())}.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="Adapter shape (LoRA family).")
    num_virtual_tokens: int = Field(
        20, ge=1, le=512, description="Virtual tokens for prefix and prompt tuning."
    )

    learning_rate: float | None = Field(
        None, ge=1e-6, le=1e-2,
        description=f"Peak learning rate; None means the method's default: {_rate(ADAPTER_LEARNING_RATE)} "
        f"(adapters) or {_rate(FULL_LEARNING_RATE)} (full).",
    )
    batch_size: int = Field(8, ge=1, le=64, description="Sequences per micro-batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=256, description="Micro-batches per step.")
    epochs: int = Field(3, ge=1, le=10, description="Passes over the training data.")
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="Stop after N steps (overrides epochs).")
    warmup_steps: int = Field(0, ge=0, le=100_000, description="Warm-up steps (wins over warmup_ratio).")
    warmup_ratio: float = Field(0.03, ge=0.0, le=0.5, description="Warm-up as a fraction of all steps.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    scheduler: Literal["cosine", "linear", "constant", "cosine_with_restarts"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    optimizer: Literal["adamw", "adafactor", "sgd", "adamw_8bit"] = Field(
        "adamw", description="Optimizer (adamw_8bit needs bitsandbytes and CUDA)."
    )
    max_grad_norm: float = Field(1.0, ge=0.0, le=100.0, description="Gradient clipping; 0 disables.")
    max_length: int = Field(1024, ge=16, le=131_072, description="Longest sequence in tokens; longer rows are truncated.")
    precision: RequestedPrecision = Field(
        "auto", description="Compute precision; auto picks bf16 where the hardware supports it."
    )
    attention: Literal["auto", "sdpa", "sdpa_packed", "eager", "flash_attention_2"] = Field(
        "auto",
        description="Attention kernel; auto picks the fastest available (CPU: sdpa_packed, causal SDPA per packed sequence).",
    )
    kernels: Literal["auto", "none", "liger"] = Field(
        "auto", description="Fused kernels; auto uses Liger when installed on CUDA."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    packing: bool = Field(
        True, description="Pack each micro-batch into few rows without padding (attention kept separate)."
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Random seed (data order, init, dropout).")

    logging_steps: int = Field(1, ge=1, le=10_000, description="Write metrics every N steps.")
    save_steps: int = Field(100, ge=0, le=1_000_000, description="Checkpoint every N steps; 0 only at the end.")
    save_total_limit: int = Field(2, ge=1, le=100, description="Keep at most N checkpoints.")
    eval_steps: int = Field(0, ge=0, le=1_000_000, description="Evaluate every N steps; 0 only at the end.")
    early_stopping_patience: int = Field(
        0, ge=0, le=100, description="Stop after N evals without improvement; 0 disables."
    )
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        "none", description="Extra experiment tracker (metrics always go to metrics.jsonl)."
    )
    resume_from: str | None = Field(
        None, description="'latest' or a checkpoint name; a run folder with checkpoints resumes anyway."
    )
    output: OutputSettings = Field(default_factory=OutputSettings, description="Output and evaluation.")
    engine: dict[str, Any] = Field(
        default_factory=dict, description="Written by the engine: version and hardware choices."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        problems: list[str] = []
        if not self.dataset:
            problems.append("`dataset` is required: a file path or a stored dataset version id")
        spec = method_spec(self.method)
        if not spec.packable and self.packing:
            self.packing = False  # virtual tokens are prepended per row; packing cannot apply
        if self.early_stopping_patience and not self.eval_steps:
            problems.append("`early_stopping_patience` needs `eval_steps` > 0")
        if self.early_stopping_patience and not (self.eval_split or self.eval_dataset):
            problems.append("`early_stopping_patience` needs an eval split or `eval_dataset`")
        if spec.quantized and self.precision == "fp32":
            problems.append(f"`method: {self.method}` computes in bf16 or fp16; use precision auto, bf16 or fp16")
        if spec.trains_full_weights and self.precision == "fp16":
            problems.append("`precision: fp16` with `method: full` is unstable; use bf16 or fp32")
        if not spec.uses_lora_settings and self.lora != LoraSettings():
            problems.append(f"`lora` settings do not apply to `method: {self.method}`")
        if self.eval_steps and not (self.eval_split or self.eval_dataset):
            problems.append("`eval_steps` needs an eval split (`eval_split` > 0) or `eval_dataset`")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def peak_learning_rate(self) -> float:
        """``learning_rate``, or the method's default from the registry."""
        if self.learning_rate is not None:
            return self.learning_rate
        return method_spec(self.method).default_learning_rate


def learning_rate_bounds() -> tuple[float, float]:
    """(lowest, highest) learning rate TrainConfig accepts: the range a running job may be set to."""
    low, high = 0.0, float("inf")
    for rule in TrainConfig.model_fields["learning_rate"].metadata:
        low = float(getattr(rule, "ge", low))
        high = float(getattr(rule, "le", high))
    return low, high


#: How front ends group the fields (dotted names for sections), kept here beside the fields
#: so no front end keeps its own copy: ``run`` is what to train (the dashboard has its own
#: pickers for these), ``main`` is shown first and in this order, ``engine`` is written by the
#: engine and never by a user. Every field not named here is ``advanced``. The dashboard reads
#: the groups from ``GET /api/meta``; ``tunelab train --help`` and docs/training.md use them too
#: (``tunelab.training.config_docs``).
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("name", "model", "dataset"),
    "main": (
        "method", "max_steps", "epochs", "learning_rate", "batch_size", "gradient_accumulation_steps",
        "max_length", "scheduler", "warmup_ratio", "lora.r", "lora.alpha", "lora.dropout",
        "eval_split", "eval_steps", "save_steps", "max_rows", "output.evaluate", "seed",
    ),
    "engine": ("engine",),
}  # fmt: skip


def load_config_dict(data: dict[str, Any]) -> TrainConfig:
    """Validate a dict into a TrainConfig, turning pydantic errors into one ConfigError."""
    from pydantic import ValidationError

    from tunelab.errors import ConfigError

    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "config"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}" if where != "config" else msg)
        raise ConfigError(
            "Invalid training config: " + "; ".join(lines),
            hint="Fix the fields named above; `tunelab train --help` lists every field.",
            details={"errors": lines},
        ) from None
