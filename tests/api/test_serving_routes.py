"""Serving over HTTP with the official openai client: two adapters and their base from one process.

The standalone server (``tunelab serve-model``'s app) runs on a real port; the
studio's own routes resolve ``ft:<base>:<name>:<job id>`` ids to a job's run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import assert_error
from tests.serving.helpers import build_adapter, build_varied_model

from tunelab.serving.generation import load_chat_model

HELLO = [{"role": "user", "content": "Give three tips for staying healthy."}]
NAMES = ("base", "alpha", "beta")


@pytest.fixture(scope="module")
def served_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    base = build_varied_model(tiny_model_dir, root / "base")
    return {"base": base, "alpha": build_adapter(base, root / "alpha", 11), "beta": build_adapter(base, root / "beta", 22)}


@pytest.fixture(scope="module")
def server(served_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``serve-model BASE --adapter alpha=... --adapter beta=...`` in fp32, on a free port."""
    import os

    from tests.api.live import thread_server

    from tunelab.cli.serve_model import build_app
    from tunelab.serving.standalone import parse_adapters, served_models
    from tunelab.settings import get_settings

    home = tmp_path_factory.mktemp("serve-home")
    old = os.environ.get("TUNELAB_HOME")
    os.environ["TUNELAB_HOME"] = str(home)
    get_settings.cache_clear()
    try:
        adapters = parse_adapters([f"{n}={served_dirs[n]}" for n in ("alpha", "beta")])
        app = build_app(served_models(served_dirs["base"], adapters), precision="fp32")  # replies differ more than in bf16
        with thread_server(app) as url:
            yield url
    finally:
        os.environ.pop("TUNELAB_HOME") if old is None else os.environ.__setitem__("TUNELAB_HOME", old)
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def expected(server: str) -> dict[str, str]:
    """Each name's greedy reply, asked alone over raw HTTP."""
    replies = {}
    for name in NAMES:
        body = {"model": name, "messages": HELLO, "max_tokens": 8, "temperature": 0}
        replies[name] = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]["content"]
    assert len(set(replies.values())) == 3, replies  # base and both adapters answer differently
    return replies


def _openai(url: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="unused-locally", max_retries=0)


def test_the_openai_client_chats_with_two_adapters_and_their_base(server: str, expected: dict[str, str]) -> None:
    client = _openai(server)
    assert [m.id for m in client.models.list()] == list(NAMES)
    for name in NAMES:
        reply = client.chat.completions.create(model=name, messages=HELLO, max_tokens=8, temperature=0)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == expected[name] and reply.model == name
        assert reply.usage is not None and reply.usage.completion_tokens <= 8
        stream = client.chat.completions.create(model=name, messages=HELLO, max_tokens=8, temperature=0, stream=True,
                                                stream_options={"include_usage": True})  # type: ignore[arg-type]  # fmt: skip
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == expected[name]
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == reply.usage.total_tokens


def test_concurrent_requests_for_all_three_answer_as_each_alone(server: str, expected: dict[str, str]) -> None:
    client = _openai(server)
    got: dict[int, str] = {}

    def ask(index: int) -> None:
        name = NAMES[index % 3]
        reply = client.chat.completions.create(model=name, messages=HELLO, max_tokens=8, temperature=0)  # type: ignore[arg-type]
        got[index] = str(reply.choices[0].message.content)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert got == {i: expected[NAMES[i % 3]] for i in range(9)}


def test_text_completions_streamed_and_not(server: str) -> None:
    client = _openai(server)
    whole = client.completions.create(model="alpha", prompt="The quick brown fox", max_tokens=6, temperature=0)
    assert whole.object == "text_completion" and whole.choices[0].finish_reason in ("stop", "length")
    pieces = client.completions.create(model="alpha", prompt="The quick brown fox", max_tokens=6, temperature=0,
                                       stream=True)  # fmt: skip
    assert "".join(p.choices[0].text for p in pieces).strip() == whole.choices[0].text
    seeded = client.completions.create(model="beta", prompt="Hello", max_tokens=6, temperature=1.0, seed=5, n=2)
    again = client.completions.create(model="beta", prompt="Hello", max_tokens=6, temperature=1.0, seed=5, n=2)
    assert [c.text for c in seeded.choices] == [c.text for c in again.choices] and len(seeded.choices) == 2
    assert [c.index for c in seeded.choices] == [0, 1]


def test_stop_strings_and_top_k_reach_the_rows(server: str, expected: dict[str, str]) -> None:
    reply = expected["base"]
    stop = reply[2:4]
    answer = httpx.post(f"{server}/v1/chat/completions", json={"model": "base", "messages": HELLO, "max_tokens": 8,
                        "temperature": 0, "stop": stop, "top_k": 5}, timeout=60).json()  # fmt: skip
    assert answer["choices"][0]["message"]["content"] == reply[: reply.index(stop)].strip()
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_generate_is_the_guides_local_deployment(server: str, served_dirs: dict[str, Path]) -> None:
    answer = httpx.post(f"{server}/generate", json={"prompt": "Give three tips for staying healthy.", "max_length": 200},
                        timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"response"} and body["model"] == "alpha"  # the first adapter: the tuned model
    first = httpx.post(f"{server}/v1/chat/completions", json={"model": "alpha", "messages": HELLO,
                       "max_tokens": 200 - body["usage"]["prompt_tokens"], "temperature": 0}, timeout=60).json()  # fmt: skip
    assert body["response"] == first["choices"][0]["message"]["content"]
    short = httpx.post(f"{server}/generate", json={"prompt": "Hi", "max_length": 5, "model": "base"}, timeout=60)
    error = assert_error(short, 422, "invalid_input")
    assert "raise max_length above" in error["hint"]


def test_limits_and_unknown_names_are_clear_4xx(server: str) -> None:
    huge = httpx.post(f"{server}/v1/chat/completions", json={
        "model": "alpha", "messages": [{"role": "user", "content": "x" * 1_000_000}]}, timeout=30)  # fmt: skip
    assert "1,000,000 characters" in assert_error(huge, 400, "prompt_too_long")["message"]
    huge_text = httpx.post(f"{server}/v1/completions", json={"model": "alpha", "prompt": "x" * 1_000_000}, timeout=30)
    assert_error(huge_text, 400, "prompt_too_long")
    for path, body, limit in (
        ("/v1/chat/completions", {"model": "alpha", "messages": HELLO, "max_tokens": 10**9}, "max_tokens is 1,000,000,000; this server allows at most 8,192"),
        ("/v1/completions", {"model": "alpha", "prompt": "Hi", "max_tokens": 10**9}, "max_tokens is 1,000,000,000; this server allows at most 8,192"),
        ("/generate", {"prompt": "Hi", "max_length": 10**9}, "max_length is 1,000,000,000; this server allows at most 16,384"),
    ):  # fmt: skip
        error = assert_error(httpx.post(f"{server}{path}", json=body, timeout=30), 400, "max_tokens_too_large")
        assert error["message"] == limit and "TUNELAB_CHAT_MAX_TOKENS" in error["hint"]
    error = assert_error(httpx.post(f"{server}/v1/chat/completions", json={"model": "gamma", "messages": HELLO},
                                    timeout=30), 404, "not_found")  # fmt: skip
    assert "'base', 'alpha', 'beta'" in error["message"] and "--adapter NAME=PATH" in error["hint"]
    five = httpx.post(f"{server}/v1/completions", json={"model": "alpha", "prompt": "Hi", "stop": list("abcde")},
                      timeout=30)  # fmt: skip
    assert "stop takes at most 4 strings" in assert_error(five, 422, "invalid_input")["message"]
    ft = httpx.post(f"{server}/v1/completions", json={"model": "ft:base:alpha:job-1", "prompt": "Hi", "max_tokens": 2},
                    timeout=30)  # fmt: skip
    assert ft.status_code == 200  # the studio's id form matches by its name part
    from openai import BadRequestError, NotFoundError

    client = _openai(server)
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="gamma", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError):
        client.chat.completions.create(model="alpha", messages=HELLO, max_tokens=10**9)  # type: ignore[arg-type]


def test_studio_serves_a_completed_jobs_ft_id(client: Any, make_job: Any, settings: Any, tiny_model_dir: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    from tunelab.jobs.service import get_job
    from tunelab.store.db import session_factory

    job_id = make_job("completed")
    build_adapter(tiny_model_dir, settings.runs_dir / job_id / "output", 3)
    (settings.runs_dir / job_id / "config.json").write_text(json.dumps({"model": str(tiny_model_dir)}))
    with session_factory(settings.resolved_database_url)() as session:
        job = get_job(session, job_id)
        job.run_dir = str(settings.runs_dir / job_id)
        session.commit()
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    tuned = next(i for i in ids if i.startswith("ft:") and i.endswith(f":{job_id}"))
    answer = client.post("/v1/chat/completions", json={"model": tuned, "messages": HELLO, "max_tokens": 4,
                                                       "temperature": 0})  # fmt: skip
    assert answer.status_code == 200, answer.text
    alone = load_chat_model(settings.runs_dir / job_id, progress=False).complete(HELLO, 4, temperature=0).text
    assert answer.json()["choices"][0]["message"]["content"] == alone
    missing = client.post("/v1/chat/completions", json={"model": "ft:tiny:x:job-000000000000", "messages": HELLO})
    assert "does not exist" in assert_error(missing, 404, "not_found")["message"]
    assert_error(client.post("/generate", json={"prompt": "Hi"}), 422, "invalid_input")  # the studio needs a model


def test_the_sdk_completes_and_generates(server: str, expected: dict[str, str]) -> None:
    from tunelab.client import Client
    from tunelab.errors import TunelabError

    with Client(server) as sdk:
        whole = sdk.complete("beta", "The quick brown fox", max_tokens=6, temperature=0)
        assert whole["object"] == "text_completion"
        assert "".join(sdk.complete_stream("beta", "The quick brown fox", max_tokens=6, temperature=0)).strip() == \
            whole["choices"][0]["text"]  # fmt: skip
        assert sdk.chat("base", HELLO, max_tokens=8, temperature=0, top_k=3)["choices"][0]["message"]["content"] == \
            expected["base"]  # fmt: skip
        assert isinstance(sdk.generate("Give three tips for staying healthy.", 60), str)
        with pytest.raises(TunelabError) as caught:
            sdk.generate("Hi", 10**9)
        assert caught.value.code == "max_tokens_too_large"
        with pytest.raises(TunelabError) as caught:
            list(sdk.complete_stream("gamma", "Hi"))
        assert caught.value.code == "not_found"
