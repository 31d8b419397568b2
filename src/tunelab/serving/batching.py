"""One base model serving many requests and adapters at once: the batching scheduler and its engine.

Requests used to take turns on a model (a lock per model), so sixteen users
waited for each other's whole replies. Here a ``Scheduler`` thread owns the
model and a ``tunelab.models.decoding.Batch``: between two decode steps it lets
pending requests join (prefilled, then one more row of the shared KV cache),
drops rows whose client left, and hands every row's new text to its
``Handle``, so each request streams as it goes while all share one forward
pass per token.

An ``Engine`` is one base model in memory with its LoRA adapters loaded under
names (PEFT ``load_adapter``), at most ``max_adapters`` of them, the least
recently used dropped when no request is using it. Rows name their adapter, so
one batch mixes the base and several fine-tunes. Adapters PEFT cannot mix in a
batch (not LoRA, or DoRA) get an engine of their own with the adapter applied.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tunelab.errors import InvalidInput, TunelabError
from tunelab.models.decoding import Batch, Row
from tunelab.models.generation import Completion, Sampling, stop_token_ids
from tunelab.models.loading import ModelParts, load_parts, load_tokenizer

log = logging.getLogger("tunelab.serving")

#: Rows decoded together at most; more requests wait (still counted by the registry's queue bound).
MAX_BATCH = 16


class Handle:
    """One request's view of the scheduler: text pieces as they are generated, then its ``Completion``.

    Setting ``cancel`` (the client left, the server stops) takes the row out
    of the batch before the next step.
    """

    def __init__(self, row: Row, cancel: threading.Event | None) -> None:
        self.row = row
        self.cancel = cancel or threading.Event()
        self.completion: Completion | None = None
        self._queue: queue.Queue[str | Completion | BaseException] = queue.Queue()

    def put(self, item: str | Completion | BaseException) -> None:
        self._queue.put(item)

    def pieces(self) -> Iterator[str]:
        """Text pieces until the reply ends; an error in the decode loop is raised here."""
        try:
            while self.completion is None:
                item = self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Completion):
                    self.completion = item
                elif item:
                    yield item
        finally:
            if self.completion is None:  # the reader left early: free the row
                self.cancel.set()

    def drain(self) -> list[str | Completion | BaseException]:
        """Everything delivered so far, without waiting (an async route polls this between sleeps)."""
        items: list[str | Completion | BaseException] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if isinstance(item, Completion):
                self.completion = item
            items.append(item)

    def result(self) -> Completion:
        """Block until the reply is complete (or cancelled: what was generated until then)."""
        for _ in self.pieces():
            pass
        assert self.completion is not None
        return self.completion


def submit_alone(prompt_ids: list[int], sampling: Sampling, reply: Callable[[threading.Event], Completion], *,
                 lock: AbstractContextManager[Any], adapter: str | None = None,
                 cancel: threading.Event | None = None, name: str = "tunelab-alone") -> Handle:  # fmt: skip
    """Answer one request outside the shared batch: ``reply(cancel)`` on a thread of its own, under ``lock``.

    For models the decode loop cannot batch (an encoder-decoder, an ensemble):
    the caller reads the same ``Handle`` as for a batched reply (the whole text,
    then the ``Completion``, or the error), and the server stays up when one
    request fails. ``lock`` keeps such replies one at a time, or off a model
    that is being changed.
    """
    sampling.check()
    handle = Handle(Row(list(prompt_ids), sampling, adapter), cancel)

    def run() -> None:
        try:
            with lock:
                done = reply(handle.cancel)
            handle.put(done.text)
            handle.put(done)
        except Exception as exc:  # the request fails, the server stays up
            handle.put(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return handle


class Scheduler:
    """The decode loop of one model: joins pending requests between steps, one forward pass per token.

    ``lock`` is held for every step; whoever changes the model (loading or
    dropping an adapter) takes it, so a forward pass never sees a half-loaded
    adapter.
    """

    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int], *, max_batch: int = MAX_BATCH,
                 mixed: bool = False) -> None:  # fmt: skip
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop_ids[0] if stop_ids else 0)
        self.batch = Batch(model, tokenizer, stop_ids, int(pad), mixed=mixed)
        self.max_batch = max(1, max_batch)
        self.lock = threading.RLock()
        self._wake = threading.Condition()
        self._pending: deque[Handle] = deque()
        self._active: list[Handle] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self.steps = 0  # forward passes so far (tests and benchmarks read it)

    @property
    def model(self) -> Any:
        return self.batch.model

    def set_model(self, model: Any, *, mixed: bool) -> None:
        """Swap in a changed model (wrapped in PEFT, quantized); rows already running keep their cache."""
        with self.lock:
            self.batch.model, self.batch.mixed = model, mixed

    def submit(self, prompt_ids: list[int], sampling: Sampling, *, adapter: str | None = None,
               cancel: threading.Event | None = None) -> Handle:  # fmt: skip
        """Queue one request; it joins the batch before the next decode step."""
        sampling.check()
        handle = Handle(Row(list(prompt_ids), sampling, adapter), cancel)
        with self._wake:
            if self._closed:
                raise TunelabError("the model is being unloaded", "send the request again", code="model_busy")
            self._pending.append(handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tunelab-decode", daemon=True)
                self._thread.start()
            self._wake.notify()
        return handle

    def adapters_in_use(self) -> set[str]:
        """Adapter names a running or waiting request uses (those must not be dropped)."""
        with self._wake:
            handles = list(self._pending) + list(self._active)
        return {h.row.adapter for h in handles if h.row.adapter}

    def close(self) -> None:
        """Finish the rows already running and stop; later ``submit`` calls are refused."""
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._active and not self._closed:
                    self._wake.wait()
                if self._closed and not self._pending and not self._active:
                    self._thread = None
                    return
            try:
                with self.lock:
                    self._tick()
            except Exception as exc:  # one broken step fails the requests in it, not the server
                log.exception("decode step failed")
                self._fail(exc)

    def _tick(self) -> None:
        """Admit waiting requests, drop cancelled rows, decode one token for the rest, deliver."""
        with self._wake:
            room = self.max_batch - len(self._active)
            joining = []
            while self._pending and room > 0:
                handle = self._pending.popleft()
                if handle.cancel.is_set():
                    handle.put(handle.row.completion())
                    continue
                joining.append(handle)
                room -= 1
        self._retire([not h.cancel.is_set() for h in self._active])
        if joining:
            self._active += joining
            pieces = self.batch.admit([h.row for h in joining])
            self._deliver(joining, pieces)
            self._retire([h.row.finish is None for h in self._active])
        if self._active:
            self._deliver(self._active, self.batch.step())
            self.steps += 1
            self._retire([h.row.finish is None and not h.cancel.is_set() for h in self._active])

    @staticmethod
    def _deliver(handles: list[Handle], pieces: list[str]) -> None:
        for handle, piece in zip(handles, pieces, strict=True):
            if piece:
                handle.put(piece)

    def _retire(self, alive: list[bool]) -> None:
        """Rows not ``alive`` leave the batch; their handles get the completion."""
        if all(alive):
            return
        for handle, keep in zip(self._active, alive, strict=True):
            if not keep:
                handle.put(handle.row.completion())
        self.batch.keep([i for i, keep in enumerate(alive) if keep])
        with self._wake:
            self._active = [h for h, keep in zip(self._active, alive, strict=True) if keep]

    def _fail(self, exc: Exception) -> None:
        with self._wake:
            failed, self._active = self._active, []
        self.batch.keep([])
        for handle in failed:
            handle.put(exc)


def mixable(adapter: Path) -> bool:
    """Whether PEFT can batch this adapter with others by name: LoRA without DoRA."""
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    return config.get("peft_type") == "LORA" and not config.get("use_dora")


class Engine:
    """A model in memory with its scheduler; for a base model, its LoRA adapters under names (LRU).

    ``parts.adapter`` set means a fixed engine: that adapter applied at load
    (the fallback for adapters PEFT cannot mix).
    """

    def __init__(self, parts: ModelParts, *, precision: str = "auto", max_adapters: int = 4,
                 max_batch: int = MAX_BATCH) -> None:  # fmt: skip
        model, tokenizer = load_parts(parts, precision=precision)
        self.parts, self.tokenizer = parts, tokenizer
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.max_adapters = max(1, max_adapters)
        self.scheduler = Scheduler(model, tokenizer, self.stop_ids, max_batch=max_batch)
        self.quantized: str | None = None
        self._adapters: OrderedDict[str, tuple[str, Any]] = OrderedDict()  # path -> (name, tokenizer)
        self._pins: dict[str, int] = {}  # path -> open requests holding it
        self._count = 0

    @property
    def model(self) -> Any:
        return self.scheduler.model

    def adapter(self, path: Path, *, pin: bool = False) -> tuple[str, Any]:
        """(name, tokenizer) of the LoRA adapter at ``path``, loaded now if needed (dropping the LRU one).

        ``pin`` keeps it loaded until ``unpin`` (a request holds it).
        """
        key = str(path)
        with self.scheduler.lock:
            if pin:
                self._pins[key] = self._pins.get(key, 0) + 1
            if key in self._adapters:
                self._adapters.move_to_end(key)
                self._evict()  # over the limit while others were held: drop them now they are free
                return self._adapters[key]
            if self.quantized:
                raise InvalidInput(f"the {self.quantized} model cannot load adapter {path.name} after quantization",
                                   "name every adapter when the server starts (serve-model --adapter)")  # fmt: skip
            tokenizer = load_tokenizer(path if (path / "tokenizer_config.json").exists() else self.parts.tokenizer,
                                       pad_fallback=False)  # fmt: skip
            if len(tokenizer) > self.model.get_input_embeddings().num_embeddings:
                raise InvalidInput(f"adapter {path.name} adds tokens to its base model, so it cannot share it",
                                   "export it merged (tunelab export) and serve that folder")  # fmt: skip
            self._count += 1
            name = f"adapter{self._count}"
            model = self.model
            if hasattr(model, "load_adapter") and hasattr(model, "peft_config"):
                model.load_adapter(str(path), adapter_name=name)
            else:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
            model.eval()
            self.scheduler.set_model(model, mixed=True)
            self._adapters[key] = (name, tokenizer)
            self._evict()
            return self._adapters[key]

    def unpin(self, path: Path) -> None:
        with self.scheduler.lock:
            key = str(path)
            self._pins[key] = self._pins.get(key, 1) - 1
            if self._pins[key] <= 0:
                del self._pins[key]

    def _evict(self) -> None:
        """Unload least recently used adapters beyond ``max_adapters`` that no request holds or runs."""
        busy = self.scheduler.adapters_in_use()
        newest = next(reversed(self._adapters))
        for key, (name, _tokenizer) in list(self._adapters.items()):
            if len(self._adapters) <= self.max_adapters:
                return
            if name not in busy and key not in self._pins and key != newest:
                with warnings.catch_warnings():  # "adapter X was active": rows name theirs, none is active
                    warnings.simplefilter("ignore", UserWarning)
                    self.model.delete_adapter(name)
                del self._adapters[key]

    def adapters(self) -> list[str]:
        with self.scheduler.lock:
            return list(self._adapters)

    def quantize(self) -> None:
        """int8 dynamic quantization of the frozen Linear layers (CPU inference); adapters stay fp32."""
        import torch
        from torch.ao.quantization import quantize_dynamic

        with self.scheduler.lock:
            model = self.model
            if next(model.parameters()).dtype != torch.float32:
                raise InvalidInput("int8 quantization needs the model in fp32", "load it with precision fp32")
            names = {name for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear) and "lora_" not in name}  # fmt: skip
            with warnings.catch_warnings():  # torch 2.13 marks its quantized tensors deprecated; they still work
                warnings.simplefilter("ignore", UserWarning)
                quantize_dynamic(model, qconfig_spec=names, dtype=torch.qint8, inplace=True)
            self.quantized = "int8"

    def close(self) -> None:
        self.scheduler.close()

