"""A/B experiments through the real serving path: ``model: "exp:NAME"`` on /v1/chat/completions.

Two variants of the tiny model (the base and a LoRA adapter of it, both in the
collection) split the traffic; every request is answered by the batched
engine with ``max_tokens`` 1 and recorded under its response id.
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api.conftest import assert_error

from tunelab.settings import Settings

HI = [{"role": "user", "content": "Hi"}]
CLIENTS = 16  # requests in flight at once: the engine answers them in one batch


@pytest.fixture
def settings(tunelab_home: Path) -> Settings:
    """Room in the model's queue for every client at once."""
    return Settings(home=tunelab_home, chat_queue_size=CLIENTS)


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.serving.helpers import build_adapter

    return build_adapter(tiny_model_dir, tmp_path_factory.mktemp("exp-adapter") / "lora", 7)


@pytest.fixture
def variants(
    sessions: sessionmaker[Session], tiny_model_dir: Path, tiny_adapter: Path
) -> list[dict[str, Any]]:
    from tunelab.store.catalog import add_model

    with sessions() as session:
        add_model(session, "tiny-base", source="local", location=str(tiny_model_dir))
        add_model(session, "tiny-lora", source="local", location=str(tiny_adapter))
    return [{"name": "control", "model": "tiny-base", "weight": 0.7},
            {"name": "tuned", "model": "tiny-lora", "weight": 0.3}]  # fmt: skip


def _chat(client: TestClient, user: str | None = None, model: str = "exp:greeting") -> Any:
    body: dict[str, Any] = {"model": model, "messages": HI, "max_tokens": 1, "temperature": 0}
    if user is not None:
        body["user"] = user
    return client.post("/v1/chat/completions", json=body)


def test_thousand_requests_follow_the_split_and_are_recorded(client: TestClient, variants: list[dict[str, Any]],
                                                             sessions: sessionmaker[Session]) -> None:  # fmt: skip
    created = client.post("/api/experiments", json={"name": "greeting", "variants": variants})
    assert created.status_code == 201, created.text
    assert created.json()["model"] == "exp:greeting" and created.json()["status"] == "running"
    assert "exp:greeting" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(lambda _: _chat(client), range(1000)))
    seen: Counter[str] = Counter()
    ids: dict[str, str] = {}
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        variant = response.headers["X-Tunelab-Variant"]
        assert body["experiment"] == {"name": "greeting", "variant": variant}
        assert body["model"] == {"control": "tiny-base", "tuned": "tiny-lora"}[variant]
        assert body["usage"]["completion_tokens"] == 1
        seen[variant] += 1
        ids[body["id"]] = variant
    assert abs(seen["control"] / 1000 - 0.7) < 0.05 and abs(seen["tuned"] / 1000 - 0.3) < 0.05, seen

    results = client.get("/api/experiments/greeting").json()["results"]
    assert results["requests"] == 1000
    by_name = {v["name"]: v for v in results["variants"]}
    assert {name: v["requests"] for name, v in by_name.items()} == dict(seen)
    for variant in by_name.values():
        assert variant["mean_latency_s"] > 0 and variant["mean_completion_tokens"] == 1
        assert (
            variant["mean_prompt_tokens"] > 1 and variant["rated"] == 0 and variant["ci95"] is None
        )
    from tunelab.store.models import ExperimentRequest

    with sessions() as session:
        stored = {r.response_id: r.variant for r in session.query(ExperimentRequest)}
    assert (
        stored == ids
    )  # each request recorded under its response id, with the variant that answered


def test_same_user_meets_the_same_variant(
    client: TestClient, variants: list[dict[str, Any]]
) -> None:
    from tunelab.serving.experiments import pick

    assert (
        client.post("/api/experiments", json={"name": "greeting", "variants": variants}).status_code
        == 201
    )
    for user in ("ada", "grace", "linus"):
        answered = {_chat(client, user).headers["X-Tunelab-Variant"] for _ in range(4)}
        assert answered == {pick("greeting", variants, user)["name"]}
    spread = Counter(pick("greeting", variants, f"user-{i}")["name"] for i in range(2000))
    assert abs(spread["control"] / 2000 - 0.7) < 0.05  # users, too, are split by the weights
    other = [{**v, "weight": 1 - v["weight"]} for v in variants]
    moved = sum(pick("greeting", variants, f"u{i}")["name"] != pick("greeting", other, f"u{i}")["name"]
                for i in range(200))  # fmt: skip
    assert moved > 0  # the split, not the user alone, decides


def test_feedback_gives_rates_intervals_and_a_test(
    client: TestClient, variants: list[dict[str, Any]]
) -> None:
    from scipy.stats import binomtest, chi2_contingency

    even = [{**variants[0], "weight": 0.5}, {**variants[1], "weight": 0.5}]
    assert (
        client.post("/api/experiments", json={"name": "greeting", "variants": even}).status_code
        == 201
    )
    replies: dict[str, list[str]] = {"control": [], "tuned": []}
    user = 0
    while min(len(r) for r in replies.values()) < 11:
        response = _chat(client, f"person-{user}")
        user += 1
        replies[response.headers["X-Tunelab-Variant"]].append(response.json()["id"])
    plan = {"control": ["up"] * 3 + ["down"] * 7, "tuned": ["up"] * 8 + ["down"] * 2}
    for variant, ratings in plan.items():
        for response_id, rating in zip(replies[variant], ratings, strict=False):
            answer = client.post(
                "/api/experiments/greeting/feedback",
                json={"response_id": response_id, "rating": rating},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["variant"] == variant
    score = client.post("/api/experiments/greeting/feedback", json={"response_id": replies["tuned"][10], "score": 5,
                                                                      "comment": "great"})  # fmt: skip
    assert score.status_code == 200  # a 5 of 5 counts as good, like a thumbs up

    results = client.get("/api/experiments/greeting").json()["results"]
    control, tuned = results["variants"]
    assert (control["rated"], control["good"]) == (10, 3)
    expected = binomtest(3, 10).proportion_ci(method="wilson")
    assert control["ci95"] == pytest.approx([expected.low, expected.high])
    assert (tuned["rated"], tuned["good"], tuned["mean_score"]) == (11, 9, 5.0)
    chi2, p_value, _, _ = chi2_contingency([[3, 7], [9, 2]], correction=False)
    assert results["test"]["p_value"] == pytest.approx(p_value)
    z = tuned["vs_control"]
    assert z["statistic"] ** 2 == pytest.approx(chi2) and z["p_value"] == pytest.approx(
        p_value
    )  # z^2 is chi2
    assert z["statistic"] > 0 and z["significant"] == (p_value < 0.05)
    assert math.isclose(tuned["good_rate"], 9 / 11)


def test_bad_input_is_a_clear_4xx(client: TestClient, variants: list[dict[str, Any]]) -> None:
    unknown = [variants[0], {**variants[1], "model": "no-such-model"}]
    error = assert_error(
        client.post("/api/experiments", json={"name": "x", "variants": unknown}),
        422,
        "invalid_input",
    )
    assert "no-such-model" in error["message"]
    uneven = [variants[0], {**variants[1], "weight": 0.5}]
    error = assert_error(
        client.post("/api/experiments", json={"name": "x", "variants": uneven}),
        422,
        "invalid_input",
    )
    assert "sum to 1.2" in error["message"]
    twice = [variants[0], {**variants[0], "weight": 0.3}]
    error = assert_error(
        client.post("/api/experiments", json={"name": "x", "variants": twice}), 422, "invalid_input"
    )
    assert "used twice" in error["message"]
    assert_error(
        client.post("/api/experiments", json={"name": "bad name!", "variants": variants}),
        422,
        "invalid_input",
    )
    assert_error(_chat(client, model="exp:nope"), 404, "not_found")
    assert_error(client.get("/api/experiments/nope"), 404, "not_found")

    assert (
        client.post("/api/experiments", json={"name": "greeting", "variants": variants}).status_code
        == 201
    )
    assert_error(
        client.post("/api/experiments", json={"name": "greeting", "variants": variants}),
        409,
        "conflict",
    )
    assert_error(client.post("/api/experiments/greeting/feedback", json={"response_id": "chatcmpl-none", "rating": "up"}),
                 404, "not_found")  # fmt: skip
    reply = _chat(client).json()["id"]
    assert_error(
        client.post("/api/experiments/greeting/feedback", json={"response_id": reply}),
        422,
        "invalid_input",
    )
    stopped = client.post("/api/experiments/greeting/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert_error(_chat(client), 409, "conflict")
    assert stopped.json()["results"]["requests"] == 1  # the records stay
    assert "exp:greeting" not in [m["id"] for m in client.get("/v1/models").json()["data"]]


def test_streams_and_text_completions_are_routed_and_recorded(
    client: TestClient, variants: list[dict[str, Any]]
) -> None:
    import json

    assert (
        client.post("/api/experiments", json={"name": "greeting", "variants": variants}).status_code
        == 201
    )
    body = {
        "model": "exp:greeting",
        "messages": HI,
        "max_tokens": 2,
        "temperature": 0,
        "stream": True,
        "user": "ada",
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        variant = response.headers["X-Tunelab-Variant"]
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunk = json.loads(lines[0].removeprefix("data: "))
    assert chunk["experiment"] == {"name": "greeting", "variant": variant}
    text = client.post("/v1/completions", json={"model": "exp:greeting", "prompt": "Once", "max_tokens": 1,
                                                "user": "ada"})  # fmt: skip
    assert (
        text.status_code == 200 and text.headers["X-Tunelab-Variant"] == variant
    )  # sticky across routes
    assert text.json()["id"].startswith("cmpl-")
    results = client.get("/api/experiments/greeting").json()["results"]
    assert results["requests"] == 2
    answered = next(v for v in results["variants"] if v["name"] == variant)
    assert answered["requests"] == 2 and answered["mean_completion_tokens"] == pytest.approx(1.5)
    rated = client.post(
        "/api/experiments/greeting/feedback", json={"response_id": chunk["id"], "rating": "up"}
    )
    assert rated.status_code == 200 and rated.json()["variant"] == variant
