"""Chatting with models over /v1/chat/completions, with the openai client and raw HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import assert_error

from tunelab.errors import TunelabError
from tunelab.serving.generation import ChatModel
from tunelab.serving.registry import LoadedModels
from tunelab.settings import Settings

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


@pytest.fixture
def named_model(sessions: sessionmaker[Session], tiny_model_dir: Path) -> str:
    from tunelab.store.catalog import add_model

    with sessions() as session:
        add_model(session, "tiny-chat", source="local", location=str(tiny_model_dir))
    return "tiny-chat"


@pytest.fixture
def expected(tiny_model_dir: Path) -> str:
    from tunelab.serving.generation import load_chat_model

    return load_chat_model(tiny_model_dir, progress=False).complete(HELLO, max_new_tokens=6, temperature=0).text


def test_completion_matches_local_generation(client: TestClient, named_model: str, expected: str) -> None:
    response = client.post("/v1/chat/completions", json={
        "model": named_model, "messages": HELLO, "max_tokens": 6, "temperature": 0})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == named_model
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": expected}
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5 and 0 < usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if choice["finish_reason"] == "length":
        assert usage["completion_tokens"] == 6


def test_stream_sends_chunks_that_add_up_to_the_reply(client: TestClient, named_model: str, expected: str) -> None:
    with client.stream("POST", "/v1/chat/completions", json={
            "model": named_model, "messages": HELLO, "max_tokens": 6, "temperature": 0, "stream": True}) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")  # the row's own reason
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip() == expected


def test_models_lists_builtins_and_the_collection(client: TestClient, named_model: str) -> None:
    body = client.get("/v1/models").json()
    ids = [m["id"] for m in body["data"]]
    assert body["object"] == "list" and "smollm2-135m-instruct" in ids and named_model in ids


def test_bad_requests_say_what_to_do(client: TestClient, named_model: str, sessions: sessionmaker[Session],
                                     tiny_model_dir: Path, chat_file: Path) -> None:  # fmt: skip
    error = assert_error(client.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO}), 404, "not_found")
    assert "GET /v1/models" in error["hint"]
    path = {"model": str(tiny_model_dir), "messages": HELLO}
    assert_error(client.post("/v1/chat/completions", json=path), 404, "not_found")  # names only, never paths
    last_is_reply = {"model": named_model, "messages": [*HELLO, {"role": "assistant", "content": "Hi"}]}
    assert_error(client.post("/v1/chat/completions", json=last_is_reply), 422, "invalid_input")

    from tunelab.jobs import service

    with sessions() as session:
        job = service.create_job(session, {"model": str(tiny_model_dir), "dataset": str(chat_file), "hyperparameters": {}})
    error = assert_error(client.post("/v1/chat/completions", json={"model": job.id, "messages": HELLO}), 422,
                         "invalid_input")  # fmt: skip
    assert "once the job has completed" in error["hint"]


def test_openai_client_chats_with_a_model(base_url: str, named_model: str, expected: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused-locally", max_retries=0)
    reply = client.chat.completions.create(model=named_model, messages=HELLO, max_tokens=6, temperature=0)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == expected
    pieces = client.chat.completions.create(
        model=named_model, messages=HELLO, max_tokens=6, temperature=0, stream=True)  # type: ignore[arg-type]  # fmt: skip
    assert "".join(p.choices[0].delta.content or "" for p in pieces).strip() == expected
    assert named_model in [m.id for m in client.models.list()]


def test_sdk_chat_and_chat_stream(base_url: str, named_model: str, expected: str) -> None:
    from tunelab.client import Client
    from tunelab.errors import TunelabError

    with Client(base_url) as client:
        reply = client.chat(named_model, HELLO, max_tokens=6, temperature=0)
        assert reply["choices"][0]["message"]["content"] == expected
        assert "".join(client.chat_stream(named_model, HELLO, max_tokens=6, temperature=0)).strip() == expected
        with pytest.raises(TunelabError) as caught:
            list(client.chat_stream("nope", HELLO))
        assert caught.value.code == "not_found"


# -- bounded work: prompt length, reply length, a bounded queue, clients that leave, SIGTERM --------


@contextmanager
def slow_endless(chat: ChatModel, delay_s: float) -> Iterator[list[int]]:
    """The loaded model made slow (``delay_s`` per token) and unable to end its reply by itself."""
    original, calls = chat.model.forward, []

    def forward(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(delay_s)
        out = original(*args, **kwargs)
        out.logits[..., chat.stop_ids] = float("-inf")
        return out

    chat.model.forward = forward
    try:
        yield calls
    finally:
        del chat.model.forward


def _wait_free(models: LoadedModels, location: str, timeout_s: float = 5.0) -> float:
    """Seconds until no request holds or waits for ``location``; fails past ``timeout_s``."""
    start = time.monotonic()
    while models.waiting(location) and time.monotonic() - start < timeout_s:
        time.sleep(0.05)
    assert models.waiting(location) == 0, "the model is still held"
    return time.monotonic() - start


def test_a_huge_prompt_is_refused_at_once_with_the_numbers(client: TestClient, named_model: str) -> None:
    start = time.monotonic()
    answer = client.post("/v1/chat/completions", json={
        "model": named_model, "messages": [{"role": "user", "content": "x" * 1_000_000}]})  # fmt: skip
    error = assert_error(answer, 400, "prompt_too_long")
    assert time.monotonic() - start < 2.0
    assert "1,000,000 characters / about 250,000 tokens; the limit is 8,192 tokens" in error["message"]
    assert "TUNELAB_CHAT_MAX_PROMPT_TOKENS" in error["hint"]
    assert getattr(client.app.state, "chat_models", None) is None  # nothing was loaded for it


def test_a_prompt_beyond_the_models_context_is_refused(client: TestClient, named_model: str) -> None:
    answer = client.post("/v1/chat/completions", json={
        "model": named_model, "messages": [{"role": "user", "content": "hello world " * 1500}]})  # fmt: skip
    error = assert_error(answer, 400, "prompt_too_long")
    assert "the limit is 1,023 tokens" in error["message"] and error["details"]["context"] == 1024
    assert error["details"]["tokens"] > 1023 and "characters / about" not in error["message"]


def test_max_tokens_is_capped_by_the_context_left(tiny_model_dir: Path) -> None:
    from tunelab.models.generation import count_tokens
    from tunelab.serving.generation import load_chat_model

    chat = load_chat_model(tiny_model_dir, progress=False)
    turns = [{"role": "user", "content": "hello world " * 100}]
    used = count_tokens(chat.tokenizer, chat.render(turns))
    assert chat.fit(turns, 8192, 8192) == 1024 - used
    assert chat.fit(turns, 5, 8192) == 5
    with pytest.raises(TunelabError) as caught:
        chat.fit(turns, 5, used - 1)  # the server's cap is below the prompt
    assert caught.value.code == "prompt_too_long" and f"the limit is {used - 1:,} tokens" in caught.value.message


def test_a_full_queue_answers_503_with_retry_after(client: TestClient, named_model: str, tiny_model_dir: Path) -> None:
    models = LoadedModels(capacity=1, queue_size=1)
    client.app.state.chat_models = models
    held = models.enter(str(tiny_model_dir))  # the one place, taken
    body = {"model": named_model, "messages": HELLO, "max_tokens": 2}
    start = time.monotonic()
    answer = client.post("/v1/chat/completions", json=body)
    error = assert_error(answer, 503, "model_busy")
    assert time.monotonic() - start < 10.0 and int(answer.headers["retry-after"]) >= 1  # no wait for a place
    assert "TUNELAB_CHAT_QUEUE_SIZE" in error["hint"] and error["details"] == {"queued": 1, "limit": 1}
    held.close()
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert models.waiting(str(tiny_model_dir)) == 0


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_frees_the_model_within_seconds(settings: Settings, named_model: str,
                                                             tiny_model_dir: Path, stream: bool) -> None:  # fmt: skip
    import httpx
    from tests.api.live import thread_server

    from tunelab.api import create_app

    app, location = create_app(settings), str(tiny_model_dir)
    models = app.state.chat_models = LoadedModels(capacity=1)
    body = {"model": named_model, "messages": HELLO, "max_tokens": 8192, "temperature": 1.0, "stream": stream}
    with thread_server(app) as url, slow_endless(models.load(location), 0.05) as calls:  # ~50 s if never stopped
        if stream:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
                assert response.status_code == 200
                pieces = 0
                for line in response.iter_lines():
                    pieces += '"content": "' in line and '"content": ""' not in line
                    if pieces >= 3:
                        break  # leaving the block closes the connection mid-reply
        else:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{url}/v1/chat/completions", json=body, timeout=1.0)
        assert _wait_free(models, location) < 5.0
        generated = len(calls)
        time.sleep(0.5)
        assert len(calls) <= generated + 1 and generated < 200  # stopped, far from the 1,000 tokens asked
        answer = httpx.post(f"{url}/v1/chat/completions", json={**body, "max_tokens": 2, "stream": False}, timeout=30)
        assert answer.status_code == 200  # the next request gets the model


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_stops_the_server_within_seconds_with_streams_open(tunelab_home: Path, tmp_path: Path,
                                                                   chat_file: Path, tiny_model_dir: Path) -> None:  # fmt: skip
    import signal
    import threading

    import httpx
    from tests.api.live import free_port, start_api, stop

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_api(tunelab_home, port, tmp_path / "serve.log")
    try:
        with chat_file.open("rb") as handle:
            version = httpx.post(f"{url}/api/datasets", files={"file": ("chat.jsonl", handle)}, data={"name": "c"},
                                 timeout=30).json()["version"]["id"]  # fmt: skip
        job = httpx.post(f"{url}/api/jobs", json={"configuration": {
            "model": str(tiny_model_dir), "dataset": version, "hyperparameters": {"max_steps": 1}}}, timeout=30).json()  # fmt: skip
        httpx.post(f"{url}/api/models", json={"id": str(tiny_model_dir), "name": "tiny"}, timeout=30)
        opened = threading.Event()

        def follow(path: str, **kwargs: Any) -> None:
            try:
                with httpx.stream("GET" if not kwargs else "POST", f"{url}{path}", timeout=60, **kwargs) as response:
                    for _ in response.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass

        streams = [threading.Thread(target=follow, args=(f"/api/jobs/{job['id']}/stream",), daemon=True),
                   threading.Thread(target=follow, args=("/v1/chat/completions",), daemon=True, kwargs={"json": {
                       "model": str(tiny_model_dir), "messages": HELLO, "max_tokens": 8192, "stream": True}})]  # fmt: skip
        for thread in streams:
            thread.start()
        assert opened.wait(30)
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        assert time.monotonic() - start < 10, (tmp_path / "serve.log").read_text()[-2000:]
    finally:
        stop(server)
