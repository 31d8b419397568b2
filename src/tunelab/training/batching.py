"""Micro-batches without wasted compute: padding-free packing with clean boundaries.

A micro-batch is ``batch_size`` sequences (so steps, learning rates and losses
mean the same with or without packing). With packing on, its sequences are laid
into as few rows of at most ``max_length`` tokens as fit, longest first into the
least-filled row, so rows come out nearly equal and almost no padding is left.
``position_ids`` restart at 0 for every sequence and no attention mask is passed:
transformers (``masking_utils.find_packed_sequence_indices``) then builds a
block-diagonal causal mask for SDPA/eager and uses the varlen path for
FlashAttention, so packed sequences never attend to each other. Targets are shifted
inside each sequence, so no token is ever asked to predict its neighbour's start.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tunelab.training.encoding import IGNORE, Encoded


@dataclass
class Batch:
    """Tensors for one forward pass plus the counts used for loss and speed."""

    input_ids: Any
    targets: Any
    position_ids: Any | None
    attention_mask: Any | None
    tokens: int
    n_targets: int
    task: str = "causal_lm"  # which loss applies (``loss.loss_sum``): next tokens, target tokens or labels
    token_type_ids: Any | None = None  # segment ids of text pairs (BERT-style encoders)
    loss_options: Any | None = None  # the ``loss`` block's criterion (``loss_options.LossOptions``); None: plain

    def to(self, device: str) -> Batch:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(
            move(self.input_ids), move(self.targets), move(self.position_ids),
            move(self.attention_mask), self.tokens, self.n_targets, self.task, move(self.token_type_ids),
            self.loss_options,
        )


def plan_epoch(n_examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The micro-batches of one epoch: a shuffle fixed by (seed, epoch), so resume can replay it."""
    order = list(range(n_examples))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]


def shifted_targets(example: Encoded) -> list[int]:
    """Label of the next token at each position, IGNORE at the sequence's end."""
    return [*example.labels[1:], IGNORE]


def pack_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """Assign sequence indices to rows: longest first into the least-filled row that fits."""
    total = sum(lengths)
    n_rows = max(1, -(-total // max_length))
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    loads = [0] * n_rows
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        fitting = [r for r in range(len(rows)) if loads[r] + lengths[index] <= max_length]
        if not fitting:
            rows.append([])
            loads.append(0)
            fitting = [len(rows) - 1]
        best = min(fitting, key=lambda r: loads[r])
        rows[best].append(index)
        loads[best] += lengths[index]
    return [row for row in rows if row]


def make_batch(examples: list[Encoded], *, packing: bool, max_length: int, pad_id: int) -> Batch:
    """Collate examples into a packed (or padded) batch of tensors."""
    import torch

    tokens = sum(len(e.input_ids) for e in examples)
    n_targets = sum(e.target_tokens - int(e.labels[0] != IGNORE) for e in examples)
    if packing:
        rows = pack_rows([len(e.input_ids) for e in examples], max_length)
        width = max(sum(len(examples[i].input_ids) for i in row) for row in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        tgt = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                e = examples[i]
                n = len(e.input_ids)
                ids[r, at : at + n] = torch.tensor(e.input_ids)
                tgt[r, at : at + n] = torch.tensor(shifted_targets(e))
                pos[r, at : at + n] = torch.arange(n)
                at += n
            pos[r, at:] = torch.arange(width - at)  # padding is its own tiny sequence
        return Batch(ids, tgt, pos, None, tokens, n_targets)
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    tgt = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for r, e in enumerate(examples):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        tgt[r, :n] = torch.tensor(shifted_targets(e))
        mask[r, :n] = 1
    return Batch(ids, tgt, None, mask, tokens, n_targets)


def _padded(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-padded ids and their attention mask (encoders use absolute positions: pad on the right)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def make_seq2seq_batch(examples: list[Encoded], *, pad_id: int) -> Batch:
    """Encoder inputs and decoder targets (``labels`` of each example, IGNORE past their end); never packed.

    The model shifts the targets right into its decoder inputs itself, so every
    target token is predicted and none is a neighbour's.
    """
    import torch

    ids, mask = _padded([e.input_ids for e in examples], pad_id)
    width = max(len(e.labels) for e in examples)
    tgt = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        tgt[i, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
    tokens = sum(len(e.input_ids) + len(e.labels) for e in examples)
    return Batch(ids, tgt, None, mask, tokens, sum(len(e.labels) for e in examples), "seq2seq")


def make_labeled_batch(examples: list[Any], *, pad_id: int, task: str) -> Batch:
    """Texts (or pairs) with one label each: class ids, or float targets for regression."""
    import torch

    ids, mask = _padded([e.input_ids for e in examples], pad_id)
    types = None
    if any(e.token_type_ids for e in examples):
        types, _ = _padded([e.token_type_ids or [0] * len(e.input_ids) for e in examples], 0)
    dtype = torch.float32 if task == "regression" else torch.long
    targets = torch.tensor([e.label for e in examples], dtype=dtype)
    tokens = sum(len(e.input_ids) for e in examples)
    return Batch(ids, targets, None, mask, tokens, len(examples), task, types)
