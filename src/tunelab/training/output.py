"""What a run leaves behind: the model in output/, its summary and its evaluation.

``output/`` is loadable with plain transformers/peft: an adapter
(``adapter_config.json`` + ``adapter_model.safetensors``) or full weights, plus
the tokenizer with its chat template, ``summary.json`` and ``evaluation.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.models.merge import merge_adapter
from tunelab.training.checkpoint import (
    disk_full_guard,
    ensure_space,
    expected_checkpoint_bytes,
    save_pretrained,
)
from tunelab.training.evaluate import (
    combine,
    disabled_adapter,
    exact_match,
    measure,
    measure_labeled,
    sample_conversations,
)
from tunelab.training.methods import get as method_spec
from tunelab.training.task_data import save_labels
from tunelab.training.testhooks import hold


def _samples(recipe: Any) -> list[dict[str, Any]]:
    out = recipe.config.output
    if not recipe.task.generates:
        return []
    return sample_conversations(recipe.data.eval_records, recipe.tokenizer, recipe.config.system_prompt,
                                out.eval_prompts, out.eval_generations)


def _measure(recipe: Any) -> dict[str, Any]:
    """The task's measurement: loss and replies (+ exact match for seq2seq), or a classifier's metrics."""
    if recipe.task.labeled:
        return measure_labeled(recipe.model, recipe.data.eval, recipe.batches, recipe.autocast,
                               recipe.task.name, recipe.data.labels)  # fmt: skip
    result = measure(recipe.model, recipe.tokenizer, recipe.data.eval, _samples(recipe), recipe.batches,
                     recipe.fast, recipe.autocast, recipe.config.output.max_new_tokens)
    if recipe.task.name == "seq2seq":
        result.update(exact_match(recipe.model, recipe.tokenizer, recipe.data.eval_records,
                                  recipe.config.system_prompt, recipe.config.output.max_new_tokens))  # fmt: skip
    return result


def base_eval_path(recipe: Any) -> Path:
    return recipe.files.dir / "base_eval.json"


def evaluate_base(recipe: Any) -> None:
    """Measure the base model once, before training (or with adapters disabled)."""
    path = base_eval_path(recipe)
    if not recipe.config.output.evaluate or path.exists():
        return
    if recipe.state["global_step"] > 0 and method_spec(recipe.config.method).trains_full_weights:
        return  # the base weights are gone; evaluation.json will say base: null
    with disabled_adapter(recipe.model):
        base = _measure(recipe)
    path.write_text(json.dumps(base, indent=2))
    recipe.files.event("eval", f"base model eval loss {base['eval_loss']:.4f}",
                       {"model": "base", "eval_loss": base["eval_loss"], "perplexity": base.get("perplexity")})


def save_output(recipe: Any) -> dict[str, Any]:
    """Save weights, tokenizer, evaluation and summary; return the summary."""
    files, config = recipe.files, recipe.config
    out_dir = files.output
    out_dir.mkdir(parents=True, exist_ok=True)
    ensure_space(out_dir, expected_checkpoint_bytes(files.checkpoints, recipe.model) // 2, "the output")
    with disk_full_guard(out_dir, "the output"):  # output/ is rewritten whole by a resumed run
        save_pretrained(recipe.model, out_dir, recipe.parallel.pretrained_state(recipe.model))  # FSDP: gathered
        hold("output", recipe.state["global_step"], files.dir)
        recipe.tokenizer.save_pretrained(out_dir)
    evaluation = None
    if config.output.evaluate:
        tuned = _measure(recipe)
        path = base_eval_path(recipe)
        base = json.loads(path.read_text()) if path.exists() else None
        evaluation = combine(base, tuned, _samples(recipe))
        (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
        files.event("eval", f"tuned model eval loss {tuned['eval_loss']:.4f}",
                    {"model": "tuned", "eval_loss": tuned["eval_loss"], "perplexity": tuned.get("perplexity")})
    spec = method_spec(config.method)
    if recipe.task.labeled:  # the label names beside the weights (an adapter's base config has none)
        save_labels(out_dir, recipe.task.name, recipe.data.labels)
    if config.output.merge_adapter and spec.mergeable:
        # the one merge (fp32, then the run's storage dtype), from the adapter just saved
        merged = merge_adapter(recipe.model_dir, out_dir, recipe.hw.precision, tokenizer=recipe.tokenizer)
        merged.save_pretrained(out_dir / "merged")
        recipe.tokenizer.save_pretrained(out_dir / "merged")
        del merged
    summary = {
        "name": config.name, "task": recipe.task.name, "method": config.method, "base_model": str(recipe.model_dir),
        "adapter": spec.is_adapter, "steps": recipe.state["global_step"],
        "epochs": round(recipe.state["global_step"] / recipe.steps_per_epoch, 4),
        "final_loss": recipe.state["last_loss"], "tokens_seen": recipe.state["tokens_seen"],
        "train_seconds": round(recipe.state["elapsed_s"], 2),
        "tokens_per_second": recipe.state["tokens_seen"] / max(recipe.state["elapsed_s"], 1e-9),
        "parameters": recipe.param_counts, "hardware": recipe.hw.as_dict(),
        "evaluation": {k: evaluation[k] for k in ("base", "tuned")} if evaluation else None,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    files.event("output_saved", f"model saved to {out_dir}", {"path": str(out_dir)})
    return {"summary": summary, "evaluation": evaluation}
