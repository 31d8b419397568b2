"""The training criterion: plain cross-entropy, or the options of the config's ``loss`` block.

``loss.py`` decides where logits are computed (only at target positions, the LM
head chunk by chunk); this module decides what one chunk of logits and targets
costs. Every task's summed loss goes through ``target_loss``: with no options it
is exactly the call the engine always made (``F.cross_entropy(..., reduction="sum")``,
``F.mse_loss`` for regression), so default runs are bit-identical. The options:

- ``label_smoothing``: torch's ``label_smoothing`` (token and class cross-entropy);
- ``class_weights`` (classification) and ``token_weights`` (causal LM, seq2seq):
  one weight per target class, the label or the vocabulary token, passed as torch's
  ``weight=``. Token weights are a mapping in the config rather than a weight column
  in the data because what people weight is *which* tokens they are (the
  end-of-turn token of a model that should learn to stop, answer or label words,
  the structural tokens of a format): a mapping works with every dataset format
  and every existing dataset, and which turns train at all is already the
  messages' own ``weight`` and ``train_on_prompt``;
- ``loss_fn: "package.module:function"``: the user's own criterion, called as
  ``fn(logits, targets, task=..., weight=..., label_smoothing=...)`` with float
  logits ``(N, C)`` of the N target rows (C: vocabulary size, number of labels, or
  1 for regression) and their targets ``(N,)``; it returns the *summed* loss of those
  rows as a scalar tensor. The engine may call it several times per micro-batch on
  chunks of rows and divides the step's sum by its target count, as for the
  built-in loss. Importing it runs code, so the API accepts it only from admins
  (``tunelab.jobs.paths.admit_code``).

The logged training loss is the criterion's sum over the step divided by the
number of targets (tokens, or examples). Eval loss and perplexity stay plain
cross-entropy, so base and tuned models, and runs with different options, compare.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunelab.errors import ConfigError
from tunelab.training.encoding import IGNORE

#: ``package.module:function`` (dotted module, one attribute), as ``loss.loss_fn`` is written.
LOSS_FN_PATTERN = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$"
#: The keyword arguments the engine passes to a ``loss_fn`` beside logits and targets.
CONTEXT_KEYS = ("task", "weight", "label_smoothing")
SIGNATURE = "def NAME(logits, targets, **context) -> torch.Tensor"
MAX_WEIGHT = 1000.0
MAX_ENTRIES = 1000


class LossSettings(BaseModel):
    """What the training loss is: cross-entropy by default, with smoothing, weights or your own function."""

    model_config = ConfigDict(extra="forbid")

    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Label smoothing of the cross-entropy (torch's label_smoothing), for token and class "
        "targets; 0 is plain cross-entropy.",
    )
    class_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Classification: label -> weight (torch's weight=, 0 to 1000); labels not named weigh 1. "
        "Checked against the dataset's labels at preflight.",
    )
    token_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Causal LM and seq2seq: target token -> weight (0 to 1000), e.g. {'<|im_end|>': 3} so the "
        "model learns to stop; each key must be one token of the model's tokenizer (checked at preflight).",
    )
    loss_fn: str | None = Field(
        None,
        max_length=300,
        description="Your own criterion 'package.module:function', called as fn(logits, targets, **context) "
        "and returning the summed loss; runs code, so the API takes it from admins only.",
    )

    @model_validator(mode="after")
    def _check(self) -> LossSettings:
        problems = []
        for field in ("class_weights", "token_weights"):
            weights: dict[str, float] = getattr(self, field)
            bad = [
                key
                for key, value in weights.items()
                if not (math.isfinite(value) and 0 <= value <= MAX_WEIGHT)
            ]
            if bad:
                problems.append(
                    f"`loss.{field}` weights must be between 0 and {MAX_WEIGHT:g}: {', '.join(map(repr, bad))}"
                )
            if any(not key for key in weights):
                problems.append(f"`loss.{field}` has an empty key")
            if len(weights) > MAX_ENTRIES:
                problems.append(f"`loss.{field}` has {len(weights)} entries; at most {MAX_ENTRIES}")
        if self.loss_fn is not None and not re.fullmatch(LOSS_FN_PATTERN, self.loss_fn):
            problems.append(
                f"`loss.loss_fn` {self.loss_fn!r} is not 'package.module:function' (e.g. my_losses:focal)"
            )
        if self.class_weights and self.token_weights:
            problems.append(
                "`loss.class_weights` (classification) and `loss.token_weights` (token tasks) exclude each other"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_default(self) -> bool:
        return self == LossSettings()


def task_problems(settings: LossSettings, task: str) -> list[str]:
    """The ``loss`` fields set for a task they mean nothing to (the task registry's ``not_applicable``)."""
    from tunelab.training.tasks import TASKS

    spec = TASKS.get(task)
    if spec is None:
        return []
    default = LossSettings()
    return [f"`loss.{name}` does not apply to `task: {task}`" for name in LossSettings.model_fields
            if f"loss.{name}" in spec.not_applicable and getattr(settings, name) != getattr(default, name)]  # fmt: skip


# ------------------------------------------------------------------ loss_fn
def load_loss_fn(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function`` and check it can be called the way the engine calls it.

    Raises ``ConfigError`` (code ``loss_fn_invalid``) saying which step failed and how to fix it.
    """
    if not re.fullmatch(LOSS_FN_PATTERN, spec or ""):
        raise _bad(f"`loss.loss_fn` {spec!r} is not 'package.module:function'",
                   "name an importable module and a function in it, e.g. my_losses:focal_loss")  # fmt: skip
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _bad(f"`loss.loss_fn`: module {module_name!r} cannot be imported ({exc})",
                   "install the package, or put its folder on PYTHONPATH (e.g. PYTHONPATH=. tunelab train "
                   "config.yaml); the worker needs it on its PYTHONPATH too") from None  # fmt: skip
    except Exception as exc:  # the user's module raised while importing: say what, not a traceback
        raise _bad(
            f"`loss.loss_fn`: importing {module_name!r} failed: {type(exc).__name__}: {exc}",
            "fix the module so `python -c 'import " + module_name + "'` works",
        ) from None
    fn = getattr(module, name, None)
    if fn is None:
        raise _bad(f"`loss.loss_fn`: module {module_name!r} has no attribute {name!r}",
                   f"define {SIGNATURE.replace('NAME', name)} in {module_name}")  # fmt: skip
    if not callable(fn):
        raise _bad(f"`loss.loss_fn`: {spec} is a {type(fn).__name__}, not a function",
                   f"point it at a function: {SIGNATURE}")  # fmt: skip
    try:
        inspect.signature(fn).bind(None, None, **dict.fromkeys(CONTEXT_KEYS))
    except (TypeError, ValueError) as exc:
        raise _bad(f"`loss.loss_fn`: {spec} cannot be called as fn(logits, targets, "
                   f"{', '.join(k + '=...' for k in CONTEXT_KEYS)}) ({exc})",
                   f"give it the signature {SIGNATURE} (context: {', '.join(CONTEXT_KEYS)})") from None  # fmt: skip
    return fn


def _bad(message: str, hint: str) -> ConfigError:
    return ConfigError(message, hint, code="loss_fn_invalid", details={"field": "loss.loss_fn"})


# ------------------------------------------------------------ token weights
def token_ids(tokenizer: Any, weights: dict[str, float]) -> dict[int, float]:
    """``loss.token_weights`` keys as vocabulary ids: a vocabulary entry, or a string that is one token.

    Raises ``ConfigError`` (``token_weights_invalid``) naming every key that is not one token.
    """
    vocab = tokenizer.get_vocab()
    out: dict[int, float] = {}
    problems = []
    for key, weight in weights.items():
        ids = [vocab[key]] if key in vocab else tokenizer.encode(key, add_special_tokens=False)
        if len(ids) == 1:
            out[int(ids[0])] = weight
        else:
            pieces = tokenizer.convert_ids_to_tokens(ids)
            problems.append(f"{key!r} is {len(ids)} tokens here ({', '.join(map(repr, pieces))})")
    if problems:
        raise ConfigError(
            "`loss.token_weights` keys must be single tokens of the model's tokenizer: " + "; ".join(problems),
            "name one token per key (a vocabulary entry such as '<|im_end|>', or a word the tokenizer keeps whole)",
            code="token_weights_invalid", details={"field": "loss.token_weights"},
        )  # fmt: skip
    return out


def unknown_labels(settings: LossSettings, labels: list[str]) -> ConfigError | None:
    """A ``class_weights`` label the dataset does not have, as the error to show; None when all are known."""
    unknown = sorted(set(settings.class_weights) - set(labels))
    if not unknown:
        return None
    return ConfigError(
        f"`loss.class_weights` names labels the dataset does not have: {', '.join(map(repr, unknown))}",
        f"use the dataset's labels: {', '.join(labels)}",
        code="class_weights_invalid",
        details={"field": "loss.class_weights", "labels": labels},
    )


# ---------------------------------------------------------------- criterion
@dataclass(frozen=True)
class LossOptions:
    """The ``loss`` block resolved for one run: the weight vector on the device, the imported function."""

    label_smoothing: float = 0.0
    weight: Any | None = (
        None  # float32 (C,): per label (class_weights) or per vocabulary id (token_weights)
    )
    loss_fn: Callable[..., Any] | None = None
    name: str | None = None  # the loss_fn as configured, for error messages


def resolve(
    settings: LossSettings, *, model: Any, tokenizer: Any, labels: list[str], device: str
) -> LossOptions | None:
    """The run's options, or None for the defaults (the plain criterion, unchanged).

    Class weights follow ``labels`` (the label ids' order); token weights span the
    model's LM head, whose rows may outnumber the tokenizer's vocabulary.
    """
    import torch

    if settings.is_default:
        return None
    weight = None
    if settings.class_weights:
        known = list(labels or [])
        if (problem := unknown_labels(settings, known)) is not None:
            raise problem
        weight = torch.tensor(
            [settings.class_weights.get(label, 1.0) for label in known], dtype=torch.float32
        )
    elif settings.token_weights:
        weight = torch.ones(model.get_output_embeddings().weight.shape[0], dtype=torch.float32)
        for token, value in token_ids(tokenizer, settings.token_weights).items():
            weight[token] = value
    fn = load_loss_fn(settings.loss_fn) if settings.loss_fn else None
    return LossOptions(
        settings.label_smoothing,
        None if weight is None else weight.to(device),
        fn,
        settings.loss_fn,
    )


def chunk_criterion(
    task: str, options: LossOptions | None, default: Callable[..., Any]
) -> Callable[..., Any]:
    """The criterion ``(logits, targets) -> summed loss`` for one chunk of the LM head: ``default`` without options."""
    return default if options is None else partial(target_loss, task=task, options=options)


def target_loss(logits: Any, targets: Any, task: str, options: LossOptions | None = None) -> Any:
    """Summed loss of ``logits`` (N, C) against ``targets`` (N,): the engine's one criterion.

    Targets equal to IGNORE (seq2seq padding) add nothing. Without options this is
    the plain call, so default runs keep their exact losses.
    """
    import torch.nn.functional as F

    if options is None:
        if task == "regression":
            return F.mse_loss(logits.view(-1), targets.float(), reduction="sum")
        return F.cross_entropy(logits, targets, reduction="sum")
    if options.loss_fn is not None:
        return _custom(logits, targets, task, options)
    if task == "regression":
        return F.mse_loss(logits.view(-1), targets.float(), reduction="sum")
    return F.cross_entropy(logits, targets, weight=options.weight, label_smoothing=options.label_smoothing,
                           reduction="sum")  # fmt: skip


def _custom(logits: Any, targets: Any, task: str, options: LossOptions) -> Any:
    """The user's function on the rows that have targets, its answer checked (a scalar with a gradient)."""
    import torch

    if task != "regression":
        keep = targets != IGNORE
        if not bool(keep.all()):
            logits, targets = logits[keep], targets[keep]
    else:
        logits, targets = logits.view(-1, 1), targets.float()
    assert options.loss_fn is not None
    value = options.loss_fn(
        logits, targets, task=task, weight=options.weight, label_smoothing=options.label_smoothing
    )
    hint = "return the summed loss of the rows as a 0-dim tensor computed from logits, e.g. F.cross_entropy(logits, targets, reduction='sum')"
    if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.is_floating_point():
        shown = (
            f"a tensor of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise ConfigError(f"`loss.loss_fn` {options.name} returned {shown}, not a scalar float tensor", hint,
                          code="loss_fn_invalid", details={"field": "loss.loss_fn"})  # fmt: skip
    if logits.requires_grad and not value.requires_grad:
        raise ConfigError(f"`loss.loss_fn` {options.name} returned a value with no gradient", hint,
                          code="loss_fn_invalid", details={"field": "loss.loss_fn"})  # fmt: skip
    return value.reshape(())
