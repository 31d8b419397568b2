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
from tunelab.training.hardware import Hardware
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
    on_cpu = config.device == "cpu" or not cuda
    if config.device == "cuda" and not cuda:
        out.append(Issue("error", "cuda_unavailable", "`device: cuda` but no CUDA GPU is visible.",
                         "Use `device: auto` or `cpu`, or install a CUDA build of PyTorch.", "device"))
    spec = method_spec(config.method)
    if spec.needs_cuda and on_cpu:
        out.append(Issue("error", f"{spec.name}_needs_cuda", f"`method: {spec.name}` needs a CUDA GPU.",
                         "Use `method: lora` on this machine.", "method"))
    if (spec.quantized or config.optimizer == "adamw_8bit") and not _installed("bitsandbytes"):
        field = "method" if spec.quantized else "optimizer"
        out.append(Issue("error", "bitsandbytes_missing", f"`{field}: {getattr(config, field)}` needs bitsandbytes.",
                         "pip install bitsandbytes (CUDA only), or use `method: lora` / `optimizer: adamw`.", field))
    if config.precision == "fp16" and on_cpu:
        out.append(Issue("error", "fp16_on_cpu", "fp16 training is not supported on CPU.",
                         "Use `precision: auto`, `bf16` or `fp32`.", "precision"))
    if config.precision == "bf16" and not on_cpu and not (cuda and cuda_bf16_supported()):
        out.append(Issue("error", "bf16_unsupported", "This GPU does not support bf16.",
                         "Use `precision: fp16` or `auto`.", "precision"))
    if config.precision == "bf16" and on_cpu and not cpu_bf16_supported():
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


def _dataset_issues(config: TrainConfig) -> list[Issue]:
    from tunelab.training.data import read_records

    out: list[Issue] = []
    for field in ("dataset", "eval_dataset"):
        value = getattr(config, field)
        if not value:
            continue
        try:
            read_records(value, config.dataset_format, config.dataset_mapping)
        except TunelabError as exc:
            code = "dataset_missing" if "not found" in exc.message else "dataset_invalid"
            out.append(Issue("error", code, exc.message, exc.hint, field))
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
    issues = _device_issues(config, cuda_available())
    model_issues, info, model_dir = _model_issues(config)
    issues += model_issues + _dataset_issues(config)
    if info is not None:
        device = hardware.device if hardware else resolve_device(config.device)
        issues += _memory_issues(config, info, device)
    if model_dir is not None:
        issues += _disk_issues(config, model_dir, run_dir or Path.cwd())
    return issues


def errors_only(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.level == "error"]
