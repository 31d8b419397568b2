"""A model card (``README.md``) for a run's output folder, from what the run recorded.

A tuned model is only useful to someone who knows what it is: which base model,
which method and data, which settings, and whether it got better. The engine
already writes all of that (``config.json`` in the run folder, ``summary.json``
and ``evaluation.json`` in ``output/``); this module turns it into the card the
Hugging Face Hub shows, and that a colleague reads in the folder. It replaces
the empty template PEFT's ``save_pretrained`` leaves there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.export.hub import REPO_ID
from tunelab.training.methods import METHODS

HYPERPARAMETERS = (
    "method", "learning_rate", "epochs", "max_steps", "batch_size", "gradient_accumulation_steps",
    "max_length", "scheduler", "warmup_steps", "warmup_ratio", "weight_decay", "optimizer",
    "precision", "packing", "seed",
)  # fmt: skip
LORA_FIELDS = ("r", "alpha", "dropout", "target_modules")


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or {} when it is missing or unreadable (cards never fail a job)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _loss(evaluation: dict[str, Any], which: str) -> float | None:
    part = evaluation.get(which)
    value = part.get("eval_loss") if isinstance(part, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    base, tuned = _loss(evaluation, "base"), _loss(evaluation, "tuned")
    if tuned is None:
        return ["No evaluation was run (`output.evaluate` was off or there was no eval split)."]
    lines = ["| model | eval loss |", "| --- | --- |"]
    lines.append(f"| base | {_fmt(base) if base is not None else 'n/a'} |")
    lines.append(f"| tuned | {_fmt(tuned)} |")
    if base is not None:
        lines += ["", f"Change in eval loss: {tuned - base:+.4f} (negative is better)."]
    return lines


def _hyperparameter_lines(config: dict[str, Any]) -> list[str]:
    lines = ["| setting | value |", "| --- | --- |"]
    for key in HYPERPARAMETERS:
        if config.get(key) is not None:
            lines.append(f"| `{key}` | {_fmt(config[key])} |")
    lora = config.get("lora")
    spec = METHODS.get(str(config.get("method", "lora")))
    if isinstance(lora, dict) and spec is not None and spec.uses_lora_settings:
        for key in LORA_FIELDS:
            if lora.get(key) is not None:
                lines.append(f"| `lora.{key}` | {_fmt(lora[key])} |")
    return lines


def render_model_card(
    config: dict[str, Any],
    summary: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    title: str = "",
    usage: tuple[str, list[str]] | None = None,
    extra_tags: tuple[str, ...] = (),
) -> str:
    """The card's Markdown (with Hub metadata) from the run's three JSON documents.

    ``usage`` is (code block language, lines) for exports that are not loaded
    with transformers (GGUF, ONNX); ``extra_tags`` names their format on the Hub.
    """
    base_model = str(config.get("model") or summary.get("base_model") or "unknown")
    method = str(config.get("method") or summary.get("method") or "lora")
    spec = METHODS.get(method)
    adapter = bool(summary.get("adapter", spec.is_adapter if spec else True))
    dataset = str(config.get("dataset") or "unknown")
    meta = ["---", "tags:", "- tunelab", f"- {method}", *(f"- {tag}" for tag in extra_tags)]
    if adapter:
        meta.insert(1, "library_name: peft")
    if REPO_ID.match(base_model):  # the Hub rejects a local path as base_model
        meta.insert(1, f"base_model: {base_model}")
    meta.append("---")
    here = json.dumps(title if "/" in title else "path/to/this/folder")
    use = (
        ["from peft import PeftModel", "from transformers import AutoModelForCausalLM", "",
         f"base = AutoModelForCausalLM.from_pretrained({json.dumps(base_model)})",
         f"model = PeftModel.from_pretrained(base, {here})"]
        if adapter else
        ["from transformers import AutoModelForCausalLM", "",
         f"model = AutoModelForCausalLM.from_pretrained({here})"]
    )  # fmt: skip
    lines = [
        *meta, "", f"# {title or summary.get('name') or 'Fine-tuned model'}", "",
        f"Fine-tuned with tunelab from `{base_model}` using **{method}**"
        f"{' (an adapter; load it on top of the base model)' if adapter else ''}.", "",
        "## Training data", "", f"- dataset: `{dataset}`",
    ]  # fmt: skip
    if config.get("max_rows"):
        lines.append(f"- rows used: first {config['max_rows']}")
    lines += ["", "## Hyperparameters", "", *_hyperparameter_lines(config), ""]
    lines += ["## Results", ""]
    for key, label in (
        ("steps", "steps"),
        ("epochs", "epochs"),
        ("final_loss", "final training loss"),
        ("train_seconds", "training time (s)"),
        ("tokens_seen", "tokens seen"),
    ):
        if summary.get(key) is not None:
            lines.append(f"- {label}: {_fmt(summary[key])}")
    lines += ["", "### Evaluation", "", *_evaluation_lines(evaluation), ""]
    language, use = usage or ("python", use)
    lines += ["## How to use", "", f"```{language}", *use, "```", ""]
    return "\n".join(lines)


def run_documents(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, summary, evaluation) for a run's ``output/`` folder (or its adapter); {} where unknown."""
    run_dir = folder.parent if folder.name == "output" else folder
    return (_read_json(run_dir / "config.json"), _read_json(folder / "summary.json"),
            _read_json(folder / "evaluation.json"))  # fmt: skip


def write_model_card(run_dir: Path, *, title: str = "") -> Path:
    """Write ``output/README.md`` for the run in ``run_dir``; returns its path."""
    output = run_dir / "output"
    card = render_model_card(
        _read_json(run_dir / "config.json"),
        _read_json(output / "summary.json"),
        _read_json(output / "evaluation.json"),
        title=title,
    )
    output.mkdir(parents=True, exist_ok=True)
    path = output / "README.md"
    path.write_text(card, encoding="utf-8")
    return path
