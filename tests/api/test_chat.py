"""Chatting with models over /v1/chat/completions, with the openai client and raw HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import assert_error

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
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
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
