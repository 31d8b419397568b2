"""Several loaded models answering as one: averaged next-token probabilities, or a majority vote.

``EnsembleModel`` looks to the model runtime like one causal LM: calling it
gives the log of the members' mean softmax as ``logits`` (so the evaluation's
token accuracy, loss and perplexity measure the mixture), and its
``generate`` decodes from that mixture token by token, every member keeping
its own KV cache; ``models.generation.generate`` and the evaluation runner
use it unchanged. With ``vote`` each member writes its own answer and the
most common one (compared case- and space-insensitively; a tie goes to the
earlier member) is the ensemble's. ``EnsembleChat`` is what the chat routes
see in place of a ``ChatModel``: one request at a time, under a lock, on a
thread, answering through a ``Handle`` like the batched models.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from tunelab.errors import InvalidInput
from tunelab.models.generation import Completion, Sampling, generate
from tunelab.serving.batching import Handle, submit_alone
from tunelab.serving.ensembles import parse_location
from tunelab.serving.generation import ChatModel, Messages
from tunelab.training.encoding import render_prompt


def load_member_tokenizer(location: str) -> Any:
    from tunelab.models.loading import load_tokenizer, locate

    return load_tokenizer(locate(location, progress=False).tokenizer, pad_fallback=False)


def check_vocabularies(names: Sequence[str], tokenizers: Sequence[Any]) -> None:
    """Averaging probabilities needs every member's token ids to mean the same tokens: equal vocabularies."""
    first = tokenizers[0].get_vocab()
    differ = [
        name
        for name, tokenizer in zip(names[1:], tokenizers[1:], strict=True)
        if tokenizer.get_vocab() != first
    ]
    if differ:
        raise InvalidInput(
            f"the tokenizers of {', '.join(map(repr, differ))} differ from {names[0]!r}'s "
            f"({len(first):,} tokens), so their next-token probabilities cannot be averaged",
            "use method `vote` for members of different bases, or members fine-tuned from one base",
            details={"differ": list(differ)},
        )


def majority(texts: Sequence[str]) -> int:
    """The index of the first answer among the most common ones (case and spacing ignored)."""
    keys = [" ".join(text.casefold().split()) for text in texts]
    counts = {key: keys.count(key) for key in keys}
    best = max(counts.values())
    return next(i for i, key in enumerate(keys) if counts[key] == best)


class EnsembleModel:
    """Members (loaded models with their tokenizers) behind one causal-LM face; see the module docstring."""

    def __init__(
        self, names: Sequence[str], models: Sequence[Any], tokenizers: Sequence[Any], method: str
    ) -> None:
        if any(getattr(m.config, "is_encoder_decoder", False) for m in models):
            raise InvalidInput("an ensemble member is an encoder-decoder (T5, BART)",
                               "ensembles take decoder-only chat models")  # fmt: skip
        if method == "average":
            check_vocabularies(names, tokenizers)
        self.names, self.models, self.tokenizers, self.method = (
            list(names),
            list(models),
            list(tokenizers),
            method,
        )
        self.vocab = len(tokenizers[0].get_vocab())
        self.config = models[0].config
        self.generation_config = getattr(models[0], "generation_config", None)
        self.training = False

    def parameters(self) -> Any:
        return self.models[0].parameters()

    def eval(self) -> EnsembleModel:
        return self.train(False)

    def train(self, mode: bool = True) -> EnsembleModel:
        for model in self.models:
            model.train(mode)
        self.training = mode
        return self

    def _need_average(self) -> None:
        if self.method != "average":
            raise InvalidInput("a vote ensemble has no next-token probabilities (no loss, perplexity or token "
                               "accuracy)", "leave out the loss metrics, or use an ensemble with method average")  # fmt: skip

    def probabilities(self, input_ids: Any, attention_mask: Any = None, *, caches: list[Any] | None = None,
                      **kwargs: Any) -> Any:  # fmt: skip
        """The members' mean next-token probabilities at every position, ``[batch, length, vocab]``.

        ``caches`` holds one KV cache per member (decoding); the other keywords go to every member.
        """
        import torch

        self._need_average()
        total = None
        for k, model in enumerate(self.models):
            cached = {"past_key_values": caches[k], "use_cache": True} if caches is not None else {}
            logits = model(
                input_ids=input_ids, attention_mask=attention_mask, **kwargs, **cached
            ).logits
            logits = logits[..., : self.vocab]
            probs = torch.softmax(logits.float(), dim=-1)
            total = probs if total is None else total + probs
        return total / len(self.models)

    def __call__(self, input_ids: Any, attention_mask: Any = None, **kwargs: Any) -> Any:
        return SimpleNamespace(logits=self.probabilities(input_ids, attention_mask, **kwargs).log())

    def generate(self, input_ids: Any, attention_mask: Any = None, *, max_new_tokens: int = 16,
                 do_sample: bool = False, temperature: float | None = None, top_p: float | None = None,
                 top_k: int | None = None, eos_token_id: list[int] | int | None = None, pad_token_id: int = 0,
                 stopping_criteria: Any = None, **_: Any) -> Any:  # fmt: skip
        """Prompt and reply ids, as ``model.generate`` returns them (rows that ended padded with ``pad_token_id``)."""
        import torch

        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=(temperature or 1.0) if do_sample else 0.0,
                            top_p=top_p or 1.0, top_k=top_k)  # fmt: skip
        stops = set([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id or [])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.method == "vote":
            return self._vote(
                input_ids, attention_mask, sampling, stops, pad_token_id, stopping_criteria
            )
        from transformers import DynamicCache

        from tunelab.models.decoding import sample

        caches = [DynamicCache() for _ in self.models]
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        probs = self.probabilities(
            input_ids, attention_mask, position_ids=positions, caches=caches
        )[:, -1]
        out, mask = input_ids, attention_mask
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _step in range(max_new_tokens):
            chosen = [
                pad_token_id if done[i] else sample(row.log(), sampling)
                for i, row in enumerate(probs)
            ]
            tokens = torch.tensor(chosen, dtype=torch.long, device=input_ids.device)[:, None]
            done |= torch.tensor([t in stops for t in chosen], device=input_ids.device)
            out = torch.cat([out, tokens], dim=1)
            if bool(done.all()) or (
                stopping_criteria is not None and bool(stopping_criteria(out, None).all())
            ):
                break
            mask = torch.cat([mask, torch.ones_like(tokens)], dim=1)
            positions = positions[:, -1:] + 1
            probs = self.probabilities(tokens, mask, position_ids=positions, caches=caches)[:, -1]
        return out

    def _vote(
        self,
        input_ids: Any,
        mask: Any,
        sampling: Sampling,
        stops: set[int],
        pad: int,
        stopping: Any,
    ) -> Any:
        """Each member answers the same ids (one vocabulary); per row the majority answer's ids win."""
        import torch

        check_vocabularies(
            self.names, self.tokenizers
        )  # evaluating a vote needs one tokenizer for the ids
        width = input_ids.shape[1]
        replies = []
        for model in self.models:
            ids = model.generate(input_ids=input_ids, attention_mask=mask, **sampling.generate_kwargs(),
                                 eos_token_id=list(stops) or None, pad_token_id=pad,
                                 **({"stopping_criteria": stopping} if stopping is not None else {}))  # fmt: skip
            replies.append([row[width:].tolist() for row in ids])
        rows = []
        for i in range(input_ids.shape[0]):
            answers = [_cut(reply[i], stops) for reply in replies]
            texts = [self.tokenizers[0].decode(a, skip_special_tokens=True) for a in answers]
            rows.append(input_ids[i].tolist() + answers[majority(texts)])
        longest = max(len(row) for row in rows)
        return torch.tensor(
            [row + [pad] * (longest - len(row)) for row in rows], device=input_ids.device
        )


def _cut(ids: list[int], stops: set[int]) -> list[int]:
    """A reply up to and including its first stop id (what follows is padding)."""
    for i, token in enumerate(ids):
        if token in stops:
            return ids[: i + 1]
    return ids


def load_ensemble(location: str, *, precision: str = "auto") -> tuple[EnsembleModel, Any]:
    """(the ensemble as one model, the first member's tokenizer) for an ``ens:{...}`` location."""
    from tunelab.models.loading import load_parts, locate

    spec = parse_location(location)
    names = [m["name"] for m in spec["members"]]
    loaded = [
        load_parts(locate(m["location"], progress=False), precision=precision)
        for m in spec["members"]
    ]
    model = EnsembleModel(names, [m for m, _ in loaded], [t for _, t in loaded], spec["method"])
    return model, loaded[0][1]


class EnsembleChat:
    """An ensemble in the chat routes' place of a ``ChatModel``: render, fit, submit, one request at a time.

    A vote's members may have different chat templates, so ``render``
    remembers the conversation behind each prompt it rendered and ``submit``
    renders it again for every member (a raw ``/v1/completions`` prompt goes
    to every member as is).
    """

    adapter = None
    fit_text = ChatModel.fit_text  # the one rule for prompt and reply limits

    def __init__(self, model: EnsembleModel, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.lock = threading.Lock()  # one reply at a time
        self._turns_lock = threading.Lock()
        self._turns: OrderedDict[str, list[dict[str, str]]] = OrderedDict()

    @property
    def context_length(self) -> int | None:
        values = [getattr(m.config, "max_position_embeddings", None) for m in self.model.models]
        known = [v for v in values if isinstance(v, int) and v > 0]
        return min(known) if known else None

    def render(self, messages: Messages) -> str:
        text = render_prompt(self.tokenizer, list(messages))
        with self._turns_lock:
            self._turns[text] = list(messages)
            while len(self._turns) > 64:
                self._turns.popitem(last=False)
        return text

    def reply(
        self, prompt: str, sampling: Sampling, cancel: threading.Event | None = None
    ) -> Completion:
        """The ensemble's answer: from the mixture (average), or the members' majority (vote)."""
        if self.model.method == "average":
            return generate(self.model, self.tokenizer, [prompt], sampling, cancel=cancel)[0]
        turns = self._turns.get(prompt)
        answers = []
        for model, tokenizer in zip(self.model.models, self.model.tokenizers, strict=True):
            text = render_prompt(tokenizer, turns) if turns is not None else prompt
            answers.append(generate(model, tokenizer, [text], sampling, cancel=cancel)[0])
        return answers[majority([a.text for a in answers])]

    def submit(
        self, prompt: str, sampling: Sampling, *, cancel: threading.Event | None = None
    ) -> Handle:
        ids = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return submit_alone(ids, sampling, lambda stop: self.reply(prompt, sampling, stop), lock=self.lock,
                            cancel=cancel, name="tunelab-ensemble")  # fmt: skip
