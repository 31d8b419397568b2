"""The batching scheduler on the tiny model: batched equals alone, per-row sampling, leaving, adapters."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.models.generation import Sampling
from tunelab.models.loading import ModelParts, locate
from tunelab.serving.batching import Engine, Scheduler
from tunelab.serving.generation import ChatModel, load_chat_model

PROMPTS = ["Hi", "Give three tips for staying healthy.", "What is 2 + 2? Answer briefly, please.", "def add(a, b):"]


@pytest.fixture(scope="module")
def engine(varied_dir: Path) -> Engine:
    return Engine(ModelParts(varied_dir, None, varied_dir), precision="fp32")  # replies vary more than in bf16


def _ids(engine: Engine, text: str) -> list[int]:
    rendered = engine.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                    add_generation_prompt=True)  # fmt: skip
    return list(engine.tokenizer(rendered, add_special_tokens=False)["input_ids"])


def _alone(engine: Engine, ids: list[int], sampling: Sampling, adapter: str | None = None) -> list[int]:
    """The reply's ids with the scheduler to itself (nothing else submitted meanwhile)."""
    return engine.scheduler.submit(ids, sampling, adapter=adapter).result().token_ids


@pytest.fixture
def slow(engine: Engine) -> Any:
    """Each forward pass takes 20 ms longer, so requests submitted a little apart join a running batch."""
    model = engine.model
    original = model.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.02)
        return original(*args, **kwargs)

    model.forward = forward
    yield
    del model.forward


def test_batched_greedy_equals_one_at_a_time_token_for_token(engine: Engine, slow: None) -> None:
    greedy = Sampling(max_new_tokens=12)
    prompts = [_ids(engine, text) for text in PROMPTS]
    alone = [_alone(engine, ids, greedy) for ids in prompts]
    assert len({tuple(t) for t in alone}) == len(PROMPTS)  # the replies differ, so a mix-up would show
    steps = engine.scheduler.steps
    handles = []
    for ids in prompts:  # the later ones join while the first are mid-reply
        handles.append(engine.scheduler.submit(ids, greedy))
        time.sleep(0.05)
    together = [handle.result() for handle in handles]
    assert [done.token_ids for done in together] == alone
    assert engine.scheduler.steps - steps < sum(len(t) for t in alone)  # they shared forward passes
    assert all(done.prompt_tokens == len(ids) for done, ids in zip(together, prompts, strict=True))


def test_each_request_samples_with_its_own_settings(engine: Engine) -> None:
    ids = _ids(engine, PROMPTS[1])
    hot = Sampling(max_new_tokens=10, temperature=1.3, top_p=0.95, top_k=40, seed=7)
    seeded = _alone(engine, ids, hot)
    greedy = _alone(engine, ids, Sampling(max_new_tokens=10))
    handles = [engine.scheduler.submit(ids, hot), engine.scheduler.submit(ids, Sampling(max_new_tokens=10)),
               engine.scheduler.submit(ids, Sampling(max_new_tokens=10, temperature=1.3, seed=8)),
               engine.scheduler.submit(ids, Sampling(max_new_tokens=3))]  # fmt: skip
    done = [handle.result() for handle in handles]
    assert done[0].token_ids == seeded  # the seed decides, not the neighbours
    assert done[1].token_ids == greedy
    assert done[2].token_ids != seeded
    assert done[3].completion_tokens == 3 and done[3].finish_reason == "length"
    assert done[3].token_ids == greedy[:3]


def test_a_stop_string_ends_the_reply_and_never_streams(engine: Engine) -> None:
    ids = _ids(engine, PROMPTS[2])
    full = engine.scheduler.submit(ids, Sampling(max_new_tokens=14)).result()
    assert len(full.text) > 6
    stop = full.text[3:6]
    handle = engine.scheduler.submit(ids, Sampling(max_new_tokens=14, stop=(stop,)))
    pieces = list(handle.pieces())
    assert handle.completion is not None and handle.completion.finish_reason == "stop"
    assert "".join(pieces) == full.text[: full.text.index(stop)] == handle.completion.text or (
        "".join(pieces).strip() == handle.completion.text)
    assert stop not in "".join(pieces)


def test_a_request_that_leaves_is_dropped_from_the_batch(engine: Engine, slow: None) -> None:
    ids = [_ids(engine, text) for text in PROMPTS[:2]]
    endless = Sampling(max_new_tokens=400, temperature=1.0, seed=1)
    stays = _alone(engine, ids[1], Sampling(max_new_tokens=20))
    cancel = threading.Event()
    leaving = engine.scheduler.submit(ids[0], endless, cancel=cancel)
    staying = engine.scheduler.submit(ids[1], Sampling(max_new_tokens=20))
    pieces = leaving.pieces()
    next(pieces)
    cancel.set()
    done = leaving.result()
    assert done.completion_tokens < 100  # it stopped far from its 400 tokens
    assert staying.result().token_ids == stays  # the neighbour went on unharmed
    time.sleep(0.1)
    assert len(engine.scheduler.batch) == 0


def test_a_reader_that_stops_reading_frees_its_row(engine: Engine, slow: None) -> None:
    handle = engine.scheduler.submit(_ids(engine, "Hi"), Sampling(max_new_tokens=400, temperature=1.0, seed=2))
    pieces = handle.pieces()
    next(pieces)
    pieces.close()  # the client went away mid-stream
    assert handle.cancel.is_set()
    deadline = time.monotonic() + 5
    while len(engine.scheduler.batch) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(engine.scheduler.batch) == 0


def test_adapters_in_one_batch_answer_as_each_does_alone(varied_dir: Path, adapter_dirs: tuple[Path, Path]) -> None:
    """fp32, because PEFT's mixed-batch path rounds a bf16 layer's adapter term before adding it, its
    ordinary path after (both correct to bf16 precision, not bit for bit the same)."""
    from peft import PeftModel

    from tunelab.models.loading import load_parts

    engine = Engine(ModelParts(varied_dir, None, varied_dir), precision="fp32")
    names = [None] + [engine.adapter(path)[0] for path in adapter_dirs]
    ids = _ids(engine, PROMPTS[1])
    greedy = Sampling(max_new_tokens=16)
    alone = {}
    for name, path in zip(names, [None, *adapter_dirs], strict=True):  # each model on its own, PEFT applied as usual
        model, tokenizer = load_parts(locate(str(path or varied_dir)), precision="fp32")
        assert isinstance(model, PeftModel) == (path is not None)
        alone[name] = Scheduler(model, tokenizer, engine.stop_ids).submit(ids, greedy).result().token_ids
    assert len({tuple(v) for v in alone.values()}) == 3  # base and both adapters answer differently
    handles = [engine.scheduler.submit(ids, greedy, adapter=name) for name in names * 2]
    assert [h.result().token_ids for h in handles] == [alone[name] for name in names * 2]


def test_the_adapter_lru_drops_the_least_recently_used_unless_held(varied_dir: Path,
                                                                   adapter_dirs: tuple[Path, Path]) -> None:  # fmt: skip
    engine = Engine(ModelParts(varied_dir, None, varied_dir), max_adapters=1)
    alpha, beta = adapter_dirs
    engine.adapter(alpha)
    engine.adapter(beta)
    assert engine.adapters() == [str(beta)]
    assert set(engine.model.peft_config) == {engine.adapter(beta)[0]}
    engine.adapter(alpha, pin=True)  # a request holds alpha
    engine.adapter(beta)
    assert engine.adapters() == [str(alpha), str(beta)]  # over the limit rather than unload a busy adapter
    engine.unpin(alpha)
    engine.adapter(beta)
    engine.adapter(alpha)
    assert engine.adapters() == [str(alpha)]


def test_chat_models_of_one_base_share_its_engine(varied_dir: Path, adapter_dirs: tuple[Path, Path]) -> None:
    from tunelab.serving.registry import LoadedModels

    models = LoadedModels(capacity=1)
    base = models.load(str(varied_dir))
    tuned = [models.load(str(path)) for path in adapter_dirs]
    assert all(chat.engine is base.engine for chat in tuned) and models.loaded() == [str(varied_dir.resolve())]
    assert {chat.adapter for chat in tuned} == set(base.engine.model.peft_config)
    messages = [{"role": "user", "content": PROMPTS[0]}]
    replies = {chat.complete(messages, 8, temperature=0).text for chat in [base, *tuned]}
    assert len(replies) == 3


def test_a_failing_step_fails_its_requests_and_the_loop_goes_on(engine: Engine) -> None:
    model = engine.model
    original = model.forward

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    model.forward = broken
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            engine.scheduler.submit(_ids(engine, "Hi"), Sampling(max_new_tokens=4)).result()
    finally:
        del model.forward
    assert model.forward == original
    assert engine.scheduler.submit(_ids(engine, "Hi"), Sampling(max_new_tokens=4)).result().completion_tokens >= 1


def test_the_scheduler_refuses_bad_sampling_before_queueing(engine: Engine) -> None:
    from tunelab.errors import InvalidInput

    with pytest.raises(InvalidInput, match="stop takes at most 4"):
        engine.scheduler.submit([1, 2], Sampling(stop=("a", "b", "c", "d", "e")))
    assert isinstance(engine.scheduler, Scheduler) and not engine.scheduler._pending


def test_a_reply_outside_the_batch_runs_under_its_lock_and_answers_through_a_handle() -> None:
    """``submit_alone`` (encoder-decoders, ensembles): whole text then the completion, errors to the reader."""
    from tunelab.errors import InvalidInput
    from tunelab.models.generation import Completion
    from tunelab.serving.batching import submit_alone

    lock = threading.Lock()
    seen: list[tuple[bool, threading.Event]] = []

    def reply(cancel: threading.Event) -> Completion:
        seen.append((not lock.acquire(blocking=False), cancel))  # held by submit_alone while the reply runs
        return Completion("four", prompt_tokens=3, completion_tokens=2, finish_reason="stop")

    handle = submit_alone([1, 2, 3], Sampling(max_new_tokens=4), reply, lock=lock, adapter="a1")
    assert list(handle.pieces()) == ["four"] and handle.completion == Completion("four", 3, 2, "stop")
    assert seen == [(True, handle.cancel)] and handle.row.adapter == "a1" and handle.row.prompt_ids == [1, 2, 3]

    def broken(cancel: threading.Event) -> Completion:
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        submit_alone([1], Sampling(max_new_tokens=4), broken, lock=threading.Lock()).result()
    with pytest.raises(InvalidInput, match="stop takes at most 4"):  # refused before any thread starts
        submit_alone([1], Sampling(stop=("a", "b", "c", "d", "e")), broken, lock=threading.Lock())


def test_tunelab_chat_loads_an_adapter_the_way_the_server_does(adapter_dirs: tuple[Path, Path]) -> None:
    chat = load_chat_model(adapter_dirs[0], progress=False)
    assert isinstance(chat, ChatModel) and chat.parts == locate(str(adapter_dirs[0]))
    assert chat.adapter is not None and chat.engine.adapters() == [str(adapter_dirs[0])]  # a named row, as served
