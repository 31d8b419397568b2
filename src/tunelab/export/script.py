"""A standalone training script: the job's settings inlined into one editable Python file.

Users who outgrow the studio (or want to run on a cluster without it) ask for
"the code that did this". The script reproduces the run with plain transformers
and peft (``framework="transformers"``: its own short loop) or with TRL's
``SFTTrainer`` (``framework="trl"``, TRL 0.24): the same base model, data file,
method, LoRA settings, optimiser schedule and assistant-only loss, in about 150
readable lines with no tunelab import. Both templates share the settings dict
(``script_config``); ``script_issues`` says which of the job's settings a
script does not carry (packing in the plain loop, tunelab's speed tricks), so
nothing is dropped silently. The TRL script keeps packing: tunelab's packed
micro-batch is TRL's padding-free mode.
"""

from __future__ import annotations

import json
import pprint
from importlib import resources
from typing import Any

from tunelab.errors import InvalidInput
from tunelab.models.catalog import BUILTIN_MODELS
from tunelab.training.config import TrainConfig
from tunelab.training.methods import METHODS

FRAMEWORKS = ("transformers", "trl")
METHODS_SUPPORTED = ("lora", "dora", "full")


def _model_name(model: str) -> str:
    """A name plain transformers can load: a built-in id becomes its Hub repository."""
    entry = BUILTIN_MODELS.get(model)
    return entry.hub_id if entry is not None and entry.hub_id else model


def script_config(config: TrainConfig, output_dir: str) -> dict[str, Any]:
    """The settings the script uses, with tunelab's defaults resolved (learning rate per method)."""
    learning_rate = config.learning_rate or METHODS[config.method].default_learning_rate
    lora = config.lora
    return {
        "model": _model_name(config.model), "dataset": config.dataset, "max_rows": config.max_rows,
        "system_prompt": config.system_prompt, "train_on_prompt": config.train_on_prompt,
        "method": config.method,
        "lora": {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "target_modules": lora.target_modules},
        "learning_rate": learning_rate, "batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps, "epochs": config.epochs,
        "max_steps": config.max_steps, "warmup_steps": config.warmup_steps, "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay, "scheduler": config.scheduler, "max_grad_norm": config.max_grad_norm,
        "max_length": config.max_length, "seed": config.seed, "logging_steps": config.logging_steps,
        "packing": config.packing, "gradient_checkpointing": config.gradient_checkpointing in (True, "selective"),
        "output_dir": output_dir,
    }  # fmt: skip


def script_issues(config: TrainConfig, framework: str = "transformers") -> list[str]:
    """The job's settings the generated script does not reproduce, one line each."""
    notes = []
    if config.packing and framework == "transformers":
        notes.append("packing: the script pads each micro-batch instead (same loss, slower)")
    if config.precision in ("bf16", "fp16"):
        notes.append(f"precision {config.precision}: the script trains in fp32 (change dtype= in build_model)")
    if config.optimizer != "adamw":
        notes.append(f"optimizer {config.optimizer}: the script uses torch AdamW")
    if config.dataset_mapping or config.dataset_format:
        notes.append("dataset_format / dataset_mapping: the script reads the standard column names")
    if config.dataset_mix:
        notes.append("dataset_mix: the script trains on `dataset` alone (append the mixed-in rows to it)")
    if config.eval_dataset or config.eval_split:
        notes.append("evaluation: the script trains on every row and does not evaluate")
    return notes


def render_script(config: TrainConfig, *, framework: str = "transformers", output_dir: str = "output",
                  file_name: str = "train.py") -> str:  # fmt: skip
    """The script's text for ``config``."""
    if framework not in FRAMEWORKS:
        raise InvalidInput(f"unknown framework {framework!r}", f"use one of {', '.join(FRAMEWORKS)}")
    if config.method not in METHODS_SUPPORTED:
        raise InvalidInput(f"a script for method `{config.method}` is not generated",
                           f"script export covers {', '.join(METHODS_SUPPORTED)}")  # fmt: skip
    suffix = config.dataset.rsplit(".", 1)[-1].lower()
    if suffix not in ("json", "jsonl", "csv"):
        raise InvalidInput(f"the script reads .json, .jsonl or .csv data, not {config.dataset!r}",
                           "convert the dataset to JSONL, or edit read_rows() in the script")  # fmt: skip
    template = resources.files("tunelab.export").joinpath(f"templates/train_{framework}.py.txt").read_text()
    settings = pprint.pformat(script_config(config, output_dir), width=100, sort_dicts=False)
    notes = script_issues(config, framework)
    header = "".join(f"# not reproduced: {note}\n" for note in notes)
    body = (template.replace("__MODEL__", config.model).replace("__NAME__", json.dumps(config.name))
            .replace("__FILE__", file_name).replace("CONFIG = __CONFIG__", f"{header}CONFIG = {settings}"))  # fmt: skip
    return body
