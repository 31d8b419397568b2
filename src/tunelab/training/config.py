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
from tunelab.training.loss_options import LossSettings, task_problems
from tunelab.training.methods import ADAPTER_LEARNING_RATE, FULL_LEARNING_RATE, Method, names
from tunelab.training.methods import get as method_spec
from tunelab.training.tasks import TASKS, RequestedTask, method_problem


def _rate(value: float) -> str:
    """Mantissa and exponent (the way learning rates are written in papers and in our docs)."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


class DatasetMix(BaseModel):
    """One more dataset mixed into the training rows (``dataset_mix``); the eval split stays ``dataset``'s.

    Mixing a share of general instructions into a narrow task is the simplest
    guard against forgetting: the quick start learns its new name from the
    identity rows while the general rows keep what the base model could do
    (measured in docs/evaluation.md).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("", description="Required: dataset file (path) or stored dataset version id.")
    share: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="Fraction of all training rows drawn from this dataset (a seeded sample; all its rows "
        "when it has fewer); None adds every row.",
    )


#: How many datasets ``dataset_mix`` may name.
MAX_MIX = 16


def mix_problems(mix: list[DatasetMix]) -> list[str]:
    """Rules of ``dataset_mix`` that need no files: every entry names a dataset, the shares leave room for ``dataset``."""
    problems = [f"`dataset_mix.{i}.dataset` is required: a file path or a stored dataset version id"
                for i, entry in enumerate(mix) if not entry.dataset]  # fmt: skip
    if len(mix) > MAX_MIX:
        problems.append(f"`dataset_mix` names {len(mix)} datasets; at most {MAX_MIX} may be mixed")
    shared = sum(entry.share or 0.0 for entry in mix)
    if shared >= 1.0:
        problems.append(f"the shares in `dataset_mix` add up to {shared:g}; they must stay below 1 so some "
                        "rows come from `dataset`")  # fmt: skip
    return problems


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
    eval_metrics: list[str] = Field(
        default_factory=lambda: ["bleu", "chrf", "rouge", "exact_match", "avg_length"],
        max_length=20,
        description="Metrics of the automatic evaluation after the job, on the eval split (names and groups "
        "from GET /api/meta `metrics`); empty with eval_probe false turns it off.",
    )
    eval_probe: bool = Field(
        True, description="The automatic evaluation also asks base and tuned model the general-ability probe "
        "and flags a regression when the tuned model gets fewer right.",
    )
    eval_metric_rows: int = Field(
        50, ge=1, le=10_000, description="At most this many eval rows in the automatic evaluation."
    )
    eval_judge_url: str = Field(
        "", max_length=500, description="OpenAI-compatible base URL of an LLM judge for the automatic evaluation "
        "(score and rationale per row; its key only from the server's TUNELAB_JUDGE_API_KEY); empty: the "
        "server's TUNELAB_JUDGE_URL, or no judge. A failing judge never fails the job.",
    )
    eval_judge_model: str = Field(
        "", max_length=200, description="Model name sent to that judge; empty: TUNELAB_JUDGE_MODEL or 'default'."
    )


class DistributedSettings(BaseModel):
    """How many processes train together and how they share the model (``training/distributed.py``)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = Field(
        "none", description="none: one process; ddp: a full copy per process, gradients averaged; "
        "fsdp: parameters, gradients and optimizer state sharded; deepspeed: ZeRO stage `zero_stage`.",
    )
    nproc_per_node: int = Field(1, ge=1, le=64, description="Processes per machine (usually one per GPU).")
    nnodes: int = Field(1, ge=1, le=1024, description="Machines taking part.")
    node_rank: int = Field(0, ge=0, le=1023, description="This machine's index among the nodes (0 is the master).")
    master_addr: str = Field("127.0.0.1", min_length=1, description="Address of node 0 (multi-node only).")
    master_port: int = Field(0, ge=0, le=65535, description="Port on node 0; 0 picks a free one (single node).")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="Collective backend; auto is nccl on CUDA, gloo on CPU."
    )
    zero_stage: Literal[1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage: 1 shards optimizer state, 2 "
                                         "gradients too, 3 the parameters too.")  # fmt: skip
    offload_optimizer: bool = Field(False, description="DeepSpeed: keep optimizer state in CPU memory.")
    offload_params: bool = Field(False, description="DeepSpeed ZeRO-3: keep parameters in CPU memory.")
    fsdp_sharding: Literal["full_shard", "shard_grad_op", "no_shard"] = Field(
        "full_shard", description="FSDP: shard parameters+gradients+optimizer, only gradients+optimizer, or nothing."
    )

    @property
    def enabled(self) -> bool:
        """Whether the run is launched through torchrun."""
        return self.strategy != "none"

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def distributed_problems(dist: DistributedSettings, device: str) -> list[str]:
    """Rules of the ``distributed`` block that need no machine (preflight judges the machine)."""
    problems: list[str] = []
    if not dist.enabled and dist.world_size > 1:
        problems.append("`distributed.nproc_per_node` or `nnodes` > 1 needs a `distributed.strategy` (ddp, fsdp, "
                        "deepspeed)")
    if dist.node_rank >= dist.nnodes:
        problems.append(f"`distributed.node_rank` {dist.node_rank} must be below `nnodes` {dist.nnodes}")
    if dist.offload_params and not (dist.strategy == "deepspeed" and dist.zero_stage == 3):
        problems.append("`distributed.offload_params` needs `strategy: deepspeed` with `zero_stage: 3`")
    if dist.offload_optimizer and dist.strategy != "deepspeed":
        problems.append("`distributed.offload_optimizer` needs `strategy: deepspeed`")
    if dist.enabled and device == "mps":
        problems.append("`device: mps` trains in one process; set `distributed.strategy: none`")
    return problems


class TrainConfig(BaseModel):
    """A complete, validated description of one fine-tuning run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field("run", min_length=1, max_length=100, description="Run name (used in run folders).")
    model: str = Field(
        "smollm2-135m-instruct", min_length=1, description="Catalog name, local folder or Hub id."
    )
    dataset: str = Field("", description="Required: dataset file (path) or stored dataset version id.")
    task: RequestedTask = Field(
        "auto",
        description="What the model learns: causal_lm (chat/text), seq2seq (T5, BART: prompt -> target), "
        "classification or regression (encoders: text or text pair -> label); auto reads the model's config.",
    )
    dataset_format: str | None = Field(None, description="Force a format; None detects it.")
    dataset_mapping: dict[str, str] | None = Field(
        None, description="Column mapping for the dataset reader, e.g. {'prompt': 'question'}."
    )
    dataset_mix: list[DatasetMix] = Field(
        default_factory=list,
        description="More datasets (at most 16) mixed into the training rows, each with an optional `share`, e.g. general "
        "instructions so a narrow task does not make the model forget; the eval split comes from `dataset` alone.",
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
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where to train (mps: Apple silicon GPU; auto never picks it)."
    )
    gradient_checkpointing: bool | Literal["auto", "selective"] = Field(
        False, description="Recompute activations to save memory: true recomputes each layer (about a third more "
        "compute), selective only its cheap elementwise parts (norms, rotary, activation; no matmul runs twice); "
        "auto picks off, selective or true from the memory estimate against memory_limit_gb or the memory "
        "available, and says so.",
    )
    memory_limit_gb: float | None = Field(
        None, gt=0.0, le=100_000.0, description="Memory in GiB this run may use (gradient_checkpointing auto "
        "decides against it); None: TUNELAB_MEMORY_LIMIT_GB, else the memory available.",
    )
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
    loss: LossSettings = Field(
        default_factory=LossSettings, description="The training loss: label smoothing, weights or your own function."
    )
    distributed: DistributedSettings = Field(
        default_factory=DistributedSettings, description="Several processes or machines (torchrun)."
    )
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
        if self.task != "auto" and not TASKS[self.task].packable and self.packing:
            self.packing = False  # encoder-decoder pairs and classified rows are never packed
        if self.task != "auto" and (problem := method_problem(self.task, self.method)):
            problems.append(problem)
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
        problems += mix_problems(self.dataset_mix)
        problems += task_problems(self.loss, self.task)
        problems += distributed_problems(self.distributed, self.device)
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
        "task", "method", "max_steps", "epochs", "learning_rate", "batch_size", "gradient_accumulation_steps",
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
