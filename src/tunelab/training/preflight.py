"""Machine checks before a run starts: every problem at once, each with its fix.

``TrainConfig`` validates what can be judged from the config alone; ``preflight``
judges the config against this machine: devices, optional packages, the model
and dataset on disk, free disk space and a memory estimate. The CLI shows the
issues before training; the engine runs it again and exits with code 2 on errors.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tunelab.errors import TunelabError
from tunelab.models.catalog import ModelInfo
from tunelab.models.precision import (
    cpu_bf16_supported,
    cuda_available,
    cuda_bf16_supported,
    resolve_device,
)
from tunelab.training.config import TrainConfig
from tunelab.training.hardware import Hardware, mps_available
from tunelab.training.methods import get as method_spec

_TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
GIB = 1024**3


@dataclass
class Issue:
    """One finding; errors stop the run, warnings are reported."""

    level: Literal["error", "warning"]
    code: str
    message: str
    hint: str = ""
    field: str | None = None
    details: dict[str, Any] | None = None  # numbers behind the message, e.g. the memory estimate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _device_issues(config: TrainConfig, cuda: bool) -> list[Issue]:
    out: list[Issue] = []
    mps = config.device == "mps"
    # Not on a CUDA GPU; MPS counts here for the CUDA-only features (QLoRA, FlashAttention, Liger).
    on_cpu = config.device in ("cpu", "mps") or not cuda
    if config.device == "cuda" and not cuda:
        out.append(Issue("error", "cuda_unavailable", "`device: cuda` but no CUDA GPU is visible.",
                         "Use `device: auto` or `cpu`, or install a CUDA build of PyTorch.", "device"))
    if mps and not mps_available():
        out.append(Issue("error", "mps_unavailable", "`device: mps` but this torch build sees no Apple GPU "
                         "(torch.backends.mps.is_available() is False).",
                         "On Apple silicon install the macOS arm64 build of PyTorch (pip install torch) on "
                         "macOS 12.3 or later; elsewhere use `device: auto`.", "device"))
    spec = method_spec(config.method)
    if spec.needs_cuda and on_cpu:
        out.append(Issue("error", f"{spec.name}_needs_cuda", f"`method: {spec.name}` needs a CUDA GPU.",
                         "Use `method: lora` on this machine.", "method"))
    if (spec.quantized or config.optimizer == "adamw_8bit") and not _installed("bitsandbytes"):
        field = "method" if spec.quantized else "optimizer"
        out.append(Issue("error", "bitsandbytes_missing", f"`{field}: {getattr(config, field)}` needs bitsandbytes.",
                         "pip install bitsandbytes (CUDA only), or use `method: lora` / `optimizer: adamw`.", field))
    if config.precision == "fp16" and on_cpu and not mps:
        out.append(Issue("error", "fp16_on_cpu", "fp16 training is not supported on CPU.",
                         "Use `precision: auto`, `bf16` or `fp32`.", "precision"))
    if config.precision == "bf16" and not on_cpu and not (cuda and cuda_bf16_supported()):
        out.append(Issue("error", "bf16_unsupported", "This GPU does not support bf16.",
                         "Use `precision: fp16` or `auto`.", "precision"))
    if config.precision == "bf16" and on_cpu and not mps and not cpu_bf16_supported():
        out.append(Issue("warning", "bf16_emulated", "This CPU has no native bf16; bf16 is emulated and slow.",
                         "Use `precision: auto` (fp32 here) for speed.", "precision"))
    if config.attention == "flash_attention_2" and (on_cpu or not _installed("flash_attn")):
        out.append(Issue("error", "flash_attention_unavailable", "FlashAttention 2 needs a CUDA GPU and flash-attn.",
                         "Use `attention: auto` (SDPA).", "attention"))
    if config.kernels == "liger" and (on_cpu or not _installed("liger_kernel")):
        out.append(Issue("error", "liger_unavailable", "Liger kernels need a CUDA GPU and liger-kernel.",
                         "Use `kernels: auto`, or pip install liger-kernel on a GPU machine.", "kernels"))
    tracker = _TRACKERS.get(config.report_to)
    if tracker and not _installed(tracker):
        out.append(Issue("error", "tracker_missing", f"`report_to: {config.report_to}` but {tracker} is not installed.",
                         f"pip install {tracker}, or use `report_to: none`.", "report_to"))
    return out


def _distributed_issues(config: TrainConfig, cuda: bool) -> list[Issue]:
    """Can this machine run the ``distributed`` block: enough GPUs or cores, the backend, DeepSpeed?"""
    import os

    dist = config.distributed
    if not dist.enabled:
        return []
    out: list[Issue] = []
    on_cuda = cuda and config.device in ("auto", "cuda")
    field = "distributed.nproc_per_node"
    if on_cuda:
        import torch

        gpus = torch.cuda.device_count()
        if dist.nproc_per_node > gpus:
            out.append(Issue("error", "not_enough_gpus", f"`{field}: {dist.nproc_per_node}` needs one GPU per "
                             f"process; {gpus} visible.", f"Set `{field}` to {gpus} or fewer.", field))
    else:
        cores = os.cpu_count() or 1
        if dist.nproc_per_node > cores:
            out.append(Issue("error", "not_enough_cores", f"`{field}: {dist.nproc_per_node}` CPU processes on "
                             f"{cores} cores: each process needs a core of its own.",
                             f"Set `{field}` to {cores} or fewer, or run on a machine with GPUs.", field))
    if dist.backend == "nccl" and not on_cuda:
        out.append(Issue("error", "nccl_needs_cuda", "`distributed.backend: nccl` needs CUDA GPUs; this run is on "
                         "the CPU.", "Use `distributed.backend: auto` (gloo on a CPU).", "distributed.backend"))
    if dist.strategy == "deepspeed" and not _installed("deepspeed"):
        what = f"ZeRO-{dist.zero_stage}" + (" with CPU offload" if dist.offload_optimizer or dist.offload_params else "")
        out.append(Issue("error", "deepspeed_missing", f"`distributed.strategy: deepspeed` ({what}) needs DeepSpeed, "
                         "which is not installed.", "pip install --no-build-isolation deepspeed (the tunelab[deepspeed] "
                         "extra), or use `distributed.strategy: ddp`.", "distributed.strategy"))
    if dist.strategy == "deepspeed":
        out.extend(_deepspeed_issues(config))
    if dist.strategy == "fsdp" and method_spec(config.method).quantized:
        out.append(Issue("error", "fsdp_quantized", f"`method: {config.method}` stores the base in 4 bits "
                         "(bitsandbytes), which FSDP's shards (DTensors) cannot hold.",
                         "Use `distributed.strategy: ddp` for QLoRA, or `method: lora` with FSDP.", "method"))
    return out


def _deepspeed_issues(config: TrainConfig) -> list[Issue]:
    """What the loop's DeepSpeed path (``deepspeed_engine.py``) does not run: ZeRO-3, offload, other optimizers."""
    from tunelab.training.deepspeed_engine import SUPPORTED_OPTIMIZERS, SUPPORTED_STAGES

    dist, out = config.distributed, []
    if dist.zero_stage not in SUPPORTED_STAGES:
        out.append(Issue("error", "deepspeed_stage_not_run", f"`distributed.zero_stage: {dist.zero_stage}` shards "
                         "the parameters, which the engine's evaluation, generation and saves would have to "
                         "gather through DeepSpeed; the loop runs ZeRO-1 and ZeRO-2.", "Use `distributed.zero_stage: 2`, "
                         "or `distributed.strategy: fsdp` (parameters sharded, like ZeRO-3).", "distributed.zero_stage"))
    if dist.offload_optimizer or dist.offload_params:
        out.append(Issue("error", "deepspeed_offload_not_run", "DeepSpeed's CPU offload needs its own CPU Adam "
                         "optimizer; the loop hands DeepSpeed the engine's optimizer.", "Set "
                         "`distributed.offload_optimizer: false` (on a CPU the optimizer state is in CPU memory "
                         "already).", "distributed.offload_optimizer"))
    if config.optimizer not in SUPPORTED_OPTIMIZERS:
        out.append(Issue("error", "deepspeed_optimizer", f"`optimizer: {config.optimizer}` keeps state ZeRO cannot "
                         "partition as flat tensors.", f"Use `optimizer: {' or '.join(SUPPORTED_OPTIMIZERS)}` with "
                         "DeepSpeed, or `distributed.strategy: ddp`.", "optimizer"))
    return out


def _model_issues(config: TrainConfig) -> tuple[list[Issue], ModelInfo | None, Path | None]:
    """Is the model loadable, what are its facts, where is it? Never converts or downloads."""
    from tunelab.models import is_available, model_info

    path = Path(config.model).expanduser()
    hint = ("Use `smollm2-135m-instruct`, a local Hugging Face folder with config.json, or a Hub id "
            "(`tunelab models pull ID` while online).")
    try:
        if path.is_dir() and (path / "config.json").exists():
            return [], model_info(str(path)), path
        if not is_available(config.model):
            issue = Issue("error", "model_unavailable", f"Model {config.model!r} is not available.", hint, "model")
            return [issue], None, None
        info = model_info(config.model)
    except TunelabError as exc:
        return [Issue("error", "model_unavailable", exc.message, exc.hint or hint, "model")], None, None
    return [], info, Path(info.path) if info.path else None


def _task_issues(config: TrainConfig, model_dir: Path | None) -> tuple[list[Issue], str]:
    """The resolved task (``auto`` read from the model) and a refusal when the method cannot train it."""
    from tunelab.training.tasks import method_problem, resolve_task

    task = config.task
    if task == "auto":
        task = resolve_task("auto", model_dir) if model_dir is not None and (model_dir / "config.json").exists() \
            else "causal_lm"  # fmt: skip
    problem = method_problem(task, config.method)
    if problem is None:
        return [], task
    hint = f"Pick one of the methods {task} supports, or another model."
    return [Issue("error", "method_unsupported_for_task", problem, hint, "method",
                  {"task": task, "method": config.method})], task  # fmt: skip


def _dataset_issues(config: TrainConfig, task: str = "causal_lm") -> list[Issue]:
    from tunelab.training.data import dataset_format, read_records
    from tunelab.training.task_data import infer_labels
    from tunelab.training.tasks import get as task_spec

    out: list[Issue] = []
    fmt, mix_fmt = dataset_format(config, task), task_spec(task).dataset_format  # mixed-in files: detected
    named = [(field, getattr(config, field), fmt, config.dataset_mapping) for field in ("dataset", "eval_dataset")]
    named += [(f"dataset_mix.{i}.dataset", mix.dataset, mix_fmt, None) for i, mix in enumerate(config.dataset_mix)]
    for field, value, value_fmt, mapping in named:
        if not value:
            continue
        try:
            records = read_records(value, value_fmt, mapping)
            if field == "dataset" and task_spec(task).labeled:
                out += _class_weight_issues(config, infer_labels(records, task))
        except TunelabError as exc:
            code = "dataset_missing" if "not found" in exc.message else "dataset_invalid"
            out.append(Issue("error", code, exc.message, exc.hint, field))
    return out


def _class_weight_issues(config: TrainConfig, labels: list[str]) -> list[Issue]:
    from tunelab.training.loss_options import unknown_labels

    error = unknown_labels(config.loss, labels) if config.loss.class_weights else None
    return [] if error is None else [Issue("error", error.code, error.message, error.hint, "loss.class_weights")]


def _loss_issues(config: TrainConfig, task: str, model_dir: Path | None) -> list[Issue]:
    """The ``loss`` block against the resolved task, the tokenizer (token weights) and the importable ``loss_fn``."""
    from tunelab.training.loss_options import load_loss_fn, task_problems, token_ids

    out = [Issue("error", "loss_not_applicable", problem, "Remove the field, or pick the task it is for.", "loss")
           for problem in task_problems(config.loss, task)]  # fmt: skip
    try:
        if config.loss.token_weights and model_dir is not None and not out:
            from tunelab.models.loading import load_tokenizer

            token_ids(load_tokenizer(model_dir), config.loss.token_weights)
    except TunelabError as exc:
        out.append(Issue("error", exc.code, exc.message, exc.hint, "loss.token_weights"))
    try:
        if config.loss.loss_fn:
            load_loss_fn(config.loss.loss_fn)
    except TunelabError as exc:
        out.append(Issue("error", exc.code, exc.message, exc.hint, "loss.loss_fn"))
    return out


def weights_bytes(model_dir: Path) -> int:
    """Size of the weight files (a good proxy for parameter count x dtype size)."""
    patterns = ("*.safetensors", "*.bin", "*.gguf")
    return sum(f.stat().st_size for p in patterns for f in model_dir.glob(p))


def _memory_issues(config: TrainConfig, info: ModelInfo, device: str) -> list[Issue]:
    """The registry's estimate (the number `tunelab models info` shows) against free memory."""
    import psutil

    from tunelab.training.methods import estimate_for

    try:
        need = estimate_for(config, info).total_bytes
    except TunelabError as exc:
        return [Issue("warning", "memory_unknown", f"No memory estimate: {exc.message}", exc.hint, "model")]
    have = psutil.virtual_memory().available
    if device == "cuda" and cuda_available():
        import torch

        have = torch.cuda.mem_get_info()[0]
    if need > have:
        return [Issue("error", "memory_insufficient",
                      f"Estimated peak memory {need / GIB:.1f} GiB exceeds the {have / GIB:.1f} GiB available.",
                      "Lower batch_size or max_length, turn on gradient_checkpointing, or use lora.", "batch_size",
                      {"estimated_bytes": need, "available_bytes": have})]
    return []


def _disk_issues(config: TrainConfig, model_dir: Path, out_dir: Path) -> list[Issue]:
    out: list[Issue] = []
    size = weights_bytes(model_dir)
    full = method_spec(config.method).trains_full_weights
    disk_need = (size * 2 * (config.save_total_limit + 1)) if full else 256 * 1024**2
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if disk_need > free:
        out.append(Issue("error", "disk_insufficient",
                         f"Checkpoints and output need about {disk_need / GIB:.1f} GiB; {free / GIB:.1f} GiB free at {probe}.",
                         "Free disk space or lower save_total_limit.", "save_total_limit"))
    return out


def preflight(config: TrainConfig, hardware: Hardware | None = None, run_dir: Path | None = None) -> list[Issue]:
    """Every machine-dependent problem with this config, errors and warnings."""
    issues = _device_issues(config, cuda_available()) + _distributed_issues(config, cuda_available())
    model_issues, info, model_dir = _model_issues(config)
    task_issues, task = _task_issues(config, model_dir)
    issues += model_issues + task_issues + _dataset_issues(config, task) + _loss_issues(config, task, model_dir)
    if info is not None:
        device = hardware.device if hardware else resolve_device(config.device)
        issues += _memory_issues(config, info, device)
    if model_dir is not None:
        issues += _disk_issues(config, model_dir, run_dir or Path.cwd())
    return issues


def errors_only(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level == "error"]
