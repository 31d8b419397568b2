"""Ensembles: averaged next-token probabilities against a direct computation, votes, refusals, serving.

Two tiny models share one tokenizer (built from the same texts) but not their
weights (other seeds); a third has a tokenizer of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.errors import InvalidInput
from tunelab.settings import Settings

HI = [{"role": "user", "content": "Hello there"}]


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def members(
    tmp_path_factory: pytest.TempPathFactory, alpaca_texts: list[str]
) -> tuple[Path, Path, Path]:
    from tunelab.testing import build_tiny_model

    root = tmp_path_factory.mktemp("ensemble")
    one = build_tiny_model(root / "seed-1", alpaca_texts or None, seed=1)
    two = build_tiny_model(root / "seed-2", alpaca_texts or None, seed=2)
    other = build_tiny_model(
        root / "other", ["a completely different corpus of words"] * 20, vocab_size=300, seed=3
    )
    return one, two, other


def _load(folder: Path) -> tuple[Any, Any]:
    from tunelab.models.loading import load_parts, locate

    return load_parts(locate(str(folder), progress=False), precision="fp32")


def test_average_is_the_mean_of_the_members_softmaxes(members: tuple[Path, Path, Path]) -> None:
    import torch

    from tunelab.serving.ensemble_model import EnsembleModel

    (m1, tok), (m2, tok2) = _load(members[0]), _load(members[1])
    assert tok.get_vocab() == tok2.get_vocab()
    ensemble = EnsembleModel(["one", "two"], [m1, m2], [tok, tok2], "average")
    ids = torch.tensor([tok("The quick brown fox jumps")["input_ids"]])
    with torch.no_grad():
        expected = (
            torch.softmax(m1(input_ids=ids).logits.float(), -1)
            + torch.softmax(m2(input_ids=ids).logits.float(), -1)
        ) / 2
        got = ensemble(input_ids=ids).logits.exp()
        assert not torch.allclose(
            torch.softmax(m1(input_ids=ids).logits, -1),
            torch.softmax(m2(input_ids=ids).logits, -1),
            atol=1e-3,
        )  # fmt: skip  (the members really differ)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)

    # greedy decoding with one KV cache per member == the argmax of the mean softmax over the whole text each step
    from tunelab.models.generation import generate, stop_token_ids

    prompt = tok.apply_chat_template(HI, tokenize=False, add_generation_prompt=True)
    (done,) = generate(ensemble, tok, [prompt])  # default Sampling: greedy
    stops = stop_token_ids(m1, tok)
    sequence = list(tok(prompt, add_special_tokens=False)["input_ids"])
    naive: list[int] = []
    with torch.no_grad():
        for _ in range(done.completion_tokens):
            x = torch.tensor([sequence + naive])
            mean = (
                torch.softmax(m1(input_ids=x).logits[0, -1].float(), -1)
                + torch.softmax(m2(input_ids=x).logits[0, -1].float(), -1)
            ) / 2
            naive.append(int(mean.argmax()))
            if naive[-1] in stops:
                break
    assert done.completion_tokens > 1
    assert (
        done.text
        == tok.decode([t for t in naive if t not in stops], skip_special_tokens=True).strip()
    )


def test_mismatched_tokenizers_are_refused_for_averaging(members: tuple[Path, Path, Path]) -> None:
    from tunelab.serving.ensemble_model import EnsembleModel

    (m1, tok), (m3, tok3) = _load(members[0]), _load(members[2])
    with pytest.raises(InvalidInput, match="cannot be averaged") as caught:
        EnsembleModel(["one", "other"], [m1, m3], [tok, tok3], "average")
    assert "vote" in caught.value.hint
    EnsembleModel(["one", "other"], [m1, m3], [tok, tok3], "vote")  # a vote takes any tokenizers


def test_majority_vote() -> None:
    from tunelab.serving.ensemble_model import majority

    assert majority(["Paris", "paris ", "Lyon"]) == 0
    assert majority(["Lyon", "Paris", "PARIS"]) == 1
    assert majority(["a", "b", "c"]) == 0  # a tie goes to the first member


@pytest.fixture
def client(tunelab_home: Path, members: tuple[Path, Path, Path]) -> Iterator[TestClient]:
    from tunelab.api import create_app
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home)
    with TestClient(create_app(settings)) as test_client:
        with session_factory(settings.resolved_database_url)() as session:
            for name, folder in zip(("seed-1", "seed-2", "other"), members, strict=True):
                add_model(session, name, source="local", location=str(folder))
        yield test_client


def test_ensembles_through_the_api(client: TestClient, members: tuple[Path, Path, Path]) -> None:
    error = assert_error(client.post("/api/ensembles", json={"name": "mixed", "members": ["seed-1", "other"]}),
                         422, "invalid_input")  # fmt: skip
    assert "cannot be averaged" in error["message"] and "'other'" in error["message"]
    error = assert_error(client.post("/api/ensembles", json={"name": "x", "members": ["seed-1", "nope"]}), 422,
                         "invalid_input")  # fmt: skip
    assert "nope" in error["message"]
    assert (
        client.post(
            "/api/ensembles", json={"name": "seeds", "members": ["seed-1", "seed-2"]}
        ).status_code
        == 201
    )
    vote = client.post(
        "/api/ensembles",
        json={"name": "vote", "members": ["seed-1", "other", "seed-2"], "method": "vote"},
    )
    assert vote.status_code == 201, vote.text
    assert_error(
        client.post("/api/ensembles", json={"name": "seeds", "members": ["seed-1", "seed-2"]}),
        409,
        "conflict",
    )
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert "ens:seeds" in ids and "ens:vote" in ids

    from tunelab.models.generation import Sampling
    from tunelab.serving.ensemble_model import load_ensemble
    from tunelab.serving.ensembles import location
    from tunelab.store.db import session_factory

    settings = Settings()
    with session_factory(settings.resolved_database_url)() as session:
        where = location(session, settings, "ens:seeds")
    model, tok = load_ensemble(where)
    prompt = tok.apply_chat_template(HI, tokenize=False, add_generation_prompt=True)
    from tunelab.models.generation import generate

    (expected,) = generate(model, tok, [prompt], Sampling(max_new_tokens=6))
    reply = client.post("/v1/chat/completions", json={"model": "ens:seeds", "messages": HI, "max_tokens": 6,
                                                      "temperature": 0})  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "ens:seeds"
    assert reply.json()["choices"][0]["message"]["content"] == expected.text
    with client.stream("POST", "/v1/chat/completions", json={"model": "ens:seeds", "messages": HI, "max_tokens": 6,
                                                              "temperature": 0, "stream": True}) as streamed:  # fmt: skip
        assert streamed.status_code == 200
        lines = [line for line in streamed.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    import json

    pieces = [json.loads(line.removeprefix("data: "))["choices"][0]["delta"] for line in lines[:-1]]
    assert "".join(p.get("content", "") for p in pieces) == expected.text
    voted = client.post("/v1/chat/completions", json={"model": "ens:vote", "messages": HI, "max_tokens": 4,
                                                      "temperature": 0})  # fmt: skip
    assert voted.status_code == 200, voted.text
    assert client.delete("/api/ensembles/vote").status_code == 204
    assert_error(
        client.post("/v1/chat/completions", json={"model": "ens:vote", "messages": HI}),
        404,
        "not_found",
    )


def test_an_ensemble_is_evaluated_beside_its_members(
    members: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`tunelab ensembles eval`: the ensemble and each member on the same rows, side by side.

    The mixture's loss is at most the members' mean loss (Jensen: -log of a mean
    probability is at most the mean of -log), a property of real averaging.
    """
    import json

    from typer.testing import CliRunner

    from tunelab.cli.main import app
    from tunelab.serving import ensembles
    from tunelab.store.catalog import add_model
    from tunelab.store.db import init_db, session_factory

    settings = Settings()
    init_db(settings.resolved_database_url)
    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, "seed-1", source="local", location=str(members[0]))
        add_model(session, "seed-2", source="local", location=str(members[1]))
        ensembles.create(session, settings, "seeds", ["seed-1", "seed-2"])
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                            for q, a in (("What is 2 + 2?", "4"), ("Name a colour.", "Blue"))))  # fmt: skip
    done = CliRunner().invoke(app, ["ensembles", "eval", "seeds", "--data", str(data), "--metrics", "bleu,eval_loss",
                                    "--max-new-tokens", "4", "--json"])  # fmt: skip
    assert done.exit_code == 0, done.output
    result = json.loads(done.output[done.output.index("{") :])
    assert result["sides"] == {"model": "ens:seeds", "against": "seed-1", "against_2": "seed-2"}
    losses = {side: metrics["eval_loss"] for side, metrics in result["summary"].items()}
    assert losses["model"] <= (losses["against"] + losses["against_2"]) / 2
    assert all("bleu" in metrics for metrics in result["summary"].values())

    missing = CliRunner().invoke(app, ["ensembles", "eval", "nope", "--data", str(data)])
    assert missing.exit_code != 0 and "no ensemble 'nope'" in str(
        missing.exception or missing.output
    )


def test_a_vote_is_evaluated_on_its_answers_and_has_no_loss(
    members: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import json

    from tunelab.evaluation.run import EvalRequest, run_evaluation
    from tunelab.serving.ensembles import PREFIX

    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi"}) + "\n")
    spec = {"name": "v", "method": "vote", "members": [{"name": n, "location": str(f)} for n, f in
                                                        (("one", members[0]), ("two", members[1]), ("one-again", members[0]))]}  # fmt: skip
    where = PREFIX + json.dumps(spec)
    result = run_evaluation(EvalRequest(model=where, data=str(data), metrics=["exact_match"], max_new_tokens=4,
                                        against=str(members[0])))  # fmt: skip
    (row,) = result["rows"]
    assert (
        row["outputs"]["model"] == row["outputs"]["against"]
    )  # two of three members are `one`: its answer wins
    with pytest.raises(InvalidInput, match="no next-token probabilities"):
        run_evaluation(
            EvalRequest(model=where, data=str(data), metrics=["eval_loss"], max_new_tokens=4)
        )
