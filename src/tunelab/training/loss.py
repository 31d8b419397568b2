"""Token-level cross-entropy that computes logits only where there are targets.

The language-model head is the single largest matmul of a small model (49k-word
vocabulary for SmolLM2), and prompt and padding positions need no logits at all.
The fast path runs the decoder body, keeps the hidden states of target positions
and applies the head to those alone, in fp32 for a stable softmax. Prompt-learning
methods (virtual tokens) and models with logit soft-capping take the plain
forward instead.

The head runs chunk by chunk (``head_loss``): a chunk of target rows gets its
logits, its loss (``_chunk_loss``, the one criterion call) and, during the
forward pass, the loss's gradient with respect to its hidden states (and to
the head when the head trains); then the chunk's logits are freed. Autograd
keeps only the (targets x hidden) gradient, so fp32 logits of all targets never
exist at once: for 2,000 targets of Qwen2.5's 151,936-word vocabulary that is
1.2 GB of logits, and as much again for their gradient, that a step no longer
holds. No logit is computed twice (unlike recomputing chunks in the backward
pass), and the gradient is the one autograd computes through the unchunked
head (tests/training/test_memory.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunelab.training.batching import Batch
from tunelab.training.encoding import IGNORE
from tunelab.training.loss_options import chunk_criterion, target_loss

#: Logit values (rows x vocabulary) in one chunk: 64 MiB of fp32 logits, 341 rows of SmolLM2's
#: 49,152-word vocabulary, 110 of Qwen2.5's 151,936 (never fewer than ``MIN_CHUNK_ROWS``).
CHUNK_ELEMENTS = 1 << 24
MIN_CHUNK_ROWS = 64


def _hf_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_fast_path(model: Any, prompt_learning: bool) -> bool:
    """True when body + head is exactly the model's forward."""
    if prompt_learning:
        return False
    config = _hf_model(model).config
    text = getattr(config, "get_text_config", lambda: config)()
    return not (getattr(text, "final_logit_softcapping", None) or getattr(text, "logit_scale", None))


def task_loss_sum(model: Any, batch: Batch) -> Any:
    """Summed loss of the other tasks: target tokens (seq2seq), cross-entropy (classes) or squared error.

    Summed like the token loss, so the loop divides by the step's target count
    (target tokens, or examples) the same way for every task. The criterion is
    ``loss_options.target_loss`` with the batch's ``loss_options`` (None: plain).
    """
    if batch.task == "seq2seq":
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.targets,
                    use_cache=False)  # fmt: skip
        logits = out.logits.float()
        return target_loss(logits.view(-1, logits.shape[-1]), batch.targets.view(-1), batch.task,
                           batch.loss_options)  # fmt: skip
    kwargs = {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs).logits.float()
    return target_loss(logits, batch.targets, batch.task, batch.loss_options)


def _chunk_loss(logits: Any, targets: Any) -> Any:
    """Summed cross-entropy of one chunk of target rows: the criterion, applied per chunk."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.float(), targets, reduction="sum")


def chunk_rows(vocab: int, elements: int) -> int:
    """Target rows per head chunk for a vocabulary of ``vocab`` words."""
    return max(MIN_CHUNK_ROWS, elements // max(vocab, 1))


def _head_chunks(hidden: Any, weight: Any, targets: Any, rows: int, dtype: Any, criterion: Callable[..., Any],
                 grads: tuple[bool, bool]) -> tuple[Any, Any, Any]:  # fmt: skip
    """(loss sum, d loss / d hidden, d loss / d weight): one chunk of logits alive at a time."""
    import torch

    need_hidden, need_weight = grads
    w = weight.detach().to(dtype)
    grad_hidden = torch.empty_like(hidden) if need_hidden else None
    grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], rows):
        h = hidden[start : start + rows].detach().to(dtype)
        logits = (h @ w.T).float()
        if not (need_hidden or need_weight):
            total += criterion(logits, targets[start : start + rows]).detach().float()
            continue
        logits.requires_grad_(True)
        with torch.enable_grad():
            loss = criterion(logits, targets[start : start + rows])
        (grad,) = torch.autograd.grad(loss, logits)
        grad = grad.to(dtype)
        del logits
        if grad_hidden is not None:
            grad_hidden[start : start + rows] = grad @ w
        if grad_weight is not None:
            grad_weight += (grad.T @ h).float()
        total += loss.detach().float()
    return total, grad_hidden, grad_weight


def _chunked_head_function() -> Any:
    """The autograd Function (built on first use: torch stays out of this module's import)."""
    import torch

    class ChunkedHeadLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, rows: int, dtype: Any,
                    criterion: Callable[..., Any]) -> Any:  # fmt: skip
            grads = (bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1]))
            with torch.autocast(hidden.device.type, enabled=False):
                total, grad_hidden, grad_weight = _head_chunks(hidden, weight, targets, rows, dtype, criterion, grads)
            ctx.save_for_backward(grad_hidden, grad_weight)
            ctx.dtypes = (hidden.dtype, weight.dtype)
            return total

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            grad_hidden, grad_weight = ctx.saved_tensors
            scale = grad_out.float()
            gh = None if grad_hidden is None else (grad_hidden * scale).to(ctx.dtypes[0])
            gw = None if grad_weight is None else (grad_weight * scale).to(ctx.dtypes[1])
            return gh, gw, None, None, None, None

    return ChunkedHeadLoss


_FUNCTION: list[Any] = []


def head_loss(hidden: Any, head: Any, targets: Any, *, chunk_elements: int | None = None,
              criterion: Callable[..., Any] = _chunk_loss) -> Any:  # fmt: skip
    """Summed loss of ``head(hidden)`` against ``targets``, the head applied chunk by chunk.

    The matmul runs in the autocast dtype when autocast is on (else the head's
    dtype), like ``head(hidden)`` would. ``chunk_elements`` (default
    ``CHUNK_ELEMENTS``) sizes the chunks; 0 turns chunking off (the plain head
    and criterion, kept for comparison). A head that is not a plain
    bias-free ``nn.Linear`` (an adapted or saved head) takes the plain path.
    """
    import torch

    elements = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    if elements == 0 or not (type(head) is torch.nn.Linear and head.bias is None):
        return criterion(head(hidden).float(), targets)
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else head.weight.dtype
    rows = chunk_rows(head.weight.shape[0], elements)
    if not _FUNCTION:
        _FUNCTION.append(_chunked_head_function())
    return _FUNCTION[0].apply(hidden, head.weight, targets, rows, dtype, criterion)


def loss_sum(model: Any, batch: Batch, fast: bool) -> Any:
    """Sum of token losses over the batch's targets (divide by the step's target count)."""
    if batch.task != "causal_lm":
        return task_loss_sum(model, batch)
    mask = batch.targets != IGNORE
    if fast:
        hf = _hf_model(model)
        body = getattr(hf, hf.base_model_prefix)
        out = body(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            attention_mask=batch.attention_mask,
            use_cache=False,
        )
        hidden = out.last_hidden_state[mask]
        criterion = chunk_criterion(batch.task, batch.loss_options, _chunk_loss)  # the `loss` block, per chunk
        return head_loss(hidden, hf.get_output_embeddings(), batch.targets[mask], criterion=criterion)
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    logits = out.logits[:, -batch.input_ids.shape[1] :, :]
    return target_loss(logits[mask].float(), batch.targets[mask], batch.task, batch.loss_options)
