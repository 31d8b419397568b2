"""The task registry: which model family a run trains and what that changes, in one place.

A causal LM, an encoder-decoder (T5, BART) and an encoder classifier (BERT,
RoBERTa) go through the same loop, run directory, checkpoints, resume and pause;
what differs per task is named here once: the transformers auto class and
PEFT's ``task_type`` (``tunelab.models.loading.TASK_MODELS``), the dataset
format (labeled rows for classifiers), the encoding and collation
(``task_data.py``), the loss (``loss.py``), the metrics (``evaluate.py``), whether
packing is correct, which methods exist and which ``TrainConfig`` fields apply.
``TrainConfig``, preflight, the engine, ``GET /api/meta`` and the dashboard's
form all ask ``TASKS``.

``task: auto`` is resolved from the model's config.json
(``tunelab.models.loading.detect_task``) when the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from tunelab.errors import InvalidInput
from tunelab.models.loading import TASK_MODELS, detect_task

Task = Literal["causal_lm", "seq2seq", "classification", "regression"]
RequestedTask = Literal["auto", "causal_lm", "seq2seq", "classification", "regression"]

_GENERATION_FIELDS = ("output.eval_generations", "output.eval_prompts", "output.max_new_tokens")
_CAUSAL_ONLY = ("packing", "attention", "kernels", "train_on_prompt")
#: The ``loss`` block (``loss_options.LossSettings``): class weights are for labels, token weights for tokens.
_TOKEN_LOSS = ("loss.token_weights",)
_CLASS_LOSS = ("loss.class_weights",)
#: Every method but QLoRA: peft supports them all for these task types, and each was trained
#: on a tiny T5, BART and BERT (tests/training/test_tasks.py). QLoRA needs a CUDA GPU and was
#: tried on causal LMs only, so it is refused for the other tasks rather than promised.
_NOT_QLORA = ("full", "lora", "dora", "ia3", "prefix", "prompt", "adalora")


@dataclass(frozen=True)
class TaskSpec:
    """Facts about one task; ``as_dict`` is the public shape (``GET /api/meta``)."""

    name: str
    description: str
    dataset_format: str | None  # the dataset format the task reads; None: any conversational or text format
    packable: bool  # several examples may share a row (only where attention stays causal and one-sided)
    generates: bool  # the model writes text: sample replies, chat, exact match
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    not_applicable: tuple[str, ...]  # TrainConfig fields (dotted) that mean nothing for this task

    @property
    def auto_class(self) -> str:
        return TASK_MODELS[self.name][0]

    @property
    def peft_task_type(self) -> str:
        return TASK_MODELS[self.name][1]

    @property
    def labeled(self) -> bool:
        """Rows are a text (or pair) with a label; the model predicts the label, not tokens."""
        return self.dataset_format == "classification"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "auto_class": self.auto_class,
            "peft_task_type": self.peft_task_type, "dataset_format": self.dataset_format,
            "packable": self.packable, "generates": self.generates, "methods": list(self.methods),
            "metrics": list(self.metrics), "not_applicable": list(self.not_applicable),
        }  # fmt: skip


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "causal_lm", "Decoder-only language model (Llama, Qwen, SmolLM2, GPT): chat and text.",
            dataset_format=None, packable=True, generates=True,
            methods=("full", "lora", "dora", "qlora", "ia3", "prefix", "prompt", "adalora"),
            metrics=("eval_loss", "perplexity"), not_applicable=_CLASS_LOSS,
        ),
        TaskSpec(
            "seq2seq", "Encoder-decoder (T5, FLAN-T5, BART, CodeT5): the prompt in, the target out.",
            dataset_format=None, packable=False, generates=True, methods=_NOT_QLORA,
            metrics=("eval_loss", "perplexity", "exact_match"), not_applicable=(*_CAUSAL_ONLY, *_CLASS_LOSS),
        ),
        TaskSpec(
            "classification", "Encoder classifier (BERT, RoBERTa, DistilBERT, XLM-R): text -> one of N labels.",
            dataset_format="classification", packable=False, generates=False, methods=_NOT_QLORA,
            metrics=("eval_loss", "accuracy", "macro_f1", "per_class_f1", "confusion_matrix"),
            not_applicable=(*_CAUSAL_ONLY, "system_prompt", *_GENERATION_FIELDS, *_TOKEN_LOSS),
        ),
        TaskSpec(
            "regression", "Encoder regressor: text -> one number (scores, ratings, similarity).",
            dataset_format="classification", packable=False, generates=False, methods=_NOT_QLORA,
            metrics=("eval_loss", "mae", "rmse"),
            not_applicable=(*_CAUSAL_ONLY, "system_prompt", *_GENERATION_FIELDS, *_TOKEN_LOSS, *_CLASS_LOSS,
                            "loss.label_smoothing"),
        ),
    )
}  # fmt: skip
assert set(TASKS) == set(get_args(Task)) == set(TASK_MODELS), "every Task needs a TaskSpec and a TASK_MODELS row"


def get(name: str) -> TaskSpec:
    """The spec of ``name`` (a resolved task), or an InvalidInput listing the tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise InvalidInput(f"Unknown task {name!r}.", hint=f"Use auto or one of {', '.join(TASKS)}.") from None


def method_problem(task: str, method: str) -> str | None:
    """Why ``method`` cannot train ``task`` (a sentence naming both), or None when it can."""
    spec = TASKS.get(task)
    if spec is None or method in spec.methods:
        return None
    return (f"`method: {method}` is not available for `task: {task}`; "
            f"{task} trains with {', '.join(spec.methods)}")  # fmt: skip


def resolve_task(requested: str, model_dir: str | Path) -> str:
    """``requested`` itself, or for ``auto`` the task the model's config.json is built for."""
    return detect_task(model_dir) if requested == "auto" else requested


def task_fields() -> dict[str, list[str]]:
    """Per task, the TrainConfig fields that do not apply (what the dashboard's form hides)."""
    return {name: list(spec.not_applicable) for name, spec in TASKS.items()}
