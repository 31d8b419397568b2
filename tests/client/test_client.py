"""The SDK and the remote CLI against a real server (uvicorn in a thread)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api.live import thread_server
from tests.hub_fixtures import FakeHub
from typer.testing import CliRunner

from tunelab.api import create_app
from tunelab.cli.main import app as cli
from tunelab.client import Client
from tunelab.errors import TunelabError
from tunelab.settings import Settings

ROWS = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"ok {i}"}]}
        for i in range(10)]  # fmt: skip


@pytest.fixture
def url(tunelab_home: Path) -> Iterator[str]:
    with thread_server(create_app(Settings(home=tunelab_home))) as base:
        yield base


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _finish(job_id: str, *steps: str) -> None:
    """Move a job the way a worker would (the worker is not what these tests exercise)."""
    from tunelab.jobs.events import add_event, set_status
    from tunelab.jobs.service import get_job
    from tunelab.store.db import session_factory

    with session_factory()() as session:
        for step in steps:
            set_status(session, get_job(session, job_id), step)
            if step == "running":
                add_event(session, job_id, "log", {"line": "training started"})
            session.commit()


def test_sdk_round_trip_and_errors(url: str, data_file: Path) -> None:
    with Client(url) as client:
        assert client.health()["status"] == "ok"
        uploaded = client.upload_dataset(data_file, name="chat-demo")
        version = uploaded["version"]["id"]
        assert client.dataset_rows("chat-demo", limit=2)["count"] == 10
        assert client.preview_dataset(data_file)["ok"] is True
        config = client.save_configuration("tiny", version, {"max_steps": 3}, name="c1")
        assert client.save_configuration("tiny", version, {"max_steps": 3})["id"] == config["id"]  # stable id
        job = client.create_job(configuration_id=config["id"], name="from-config", tags=["sdk"])
        assert job["config"]["hyperparameters"] == {"max_steps": 3} and job["configuration_id"] == config["id"]
        assert client.list_jobs(tag="sdk")["count"] == 1

        with pytest.raises(TunelabError) as caught:
            client.pause_job(job["id"])
        assert caught.value.code == "illegal_transition" and caught.value.details["http_status"] == 409
        assert caught.value.hint
        with pytest.raises(TunelabError) as missing:
            client.get_job("job-nope")
        assert missing.value.code == "not_found"


def test_stream_job_resumes_from_cursor(url: str, data_file: Path) -> None:
    with Client(url) as client:
        version = client.upload_dataset(data_file)["version"]["id"]
        job = client.create_job("tiny", version)
        _finish(job["id"], "running", "completed")
        events = list(client.stream_job(job["id"]))
        assert [e["type"] for e in events] == ["status", "status", "status", "log", "status", "end"]
        assert events[-1]["status"] == "completed"
        resumed = list(client.stream_job(job["id"], after=events[2]["id"]))
        assert [e["id"] for e in resumed[:-1]] == [e["id"] for e in events[3:-1]]


def test_sse_wire_format_and_last_event_id(url: str, data_file: Path) -> None:
    import httpx

    with Client(url) as client:
        job = client.create_job("tiny", client.upload_dataset(data_file)["version"]["id"])
    _finish(job["id"], "cancelled")
    text = httpx.get(f"{url}/api/jobs/{job['id']}/stream", headers={"Last-Event-ID": "1"}).text
    blocks = [b for b in text.split("\n\n") if b.startswith("id:")]
    assert [b.splitlines()[1] for b in blocks] == ["event: status", "event: status", "event: end"]
    assert json.loads(blocks[-1].splitlines()[2][6:])["status"] == "cancelled"


def test_cli_jobs_commands(url: str, data_file: Path) -> None:
    runner = CliRunner()
    env = {"TUNELAB_URL": url}
    created = runner.invoke(cli, ["jobs", "create", "-m", "tiny", "-d", str(data_file), "--set", "max_steps=2",
                                  "--set", "lora.r=4", "--name", "cli-job", "--tag", "cli"], env=env)  # fmt: skip
    assert created.exit_code == 0, created.output
    job_id = created.stdout.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["jobs", "list", "--tag", "cli"], env=env)
    assert job_id in listed.stdout and "queued" in listed.stdout
    shown = json.loads(runner.invoke(cli, ["jobs", "show", job_id], env=env).stdout)
    assert shown["config"]["hyperparameters"] == {"max_steps": 2, "lora": {"r": 4}}
    assert f"{job_id}: cancelled" in runner.invoke(cli, ["jobs", "cancel", job_id], env=env).stdout
    logs = runner.invoke(cli, ["jobs", "logs", job_id, "--follow"], env=env)
    assert "status queued -> cancelled" in logs.stdout and "job ended: cancelled" in logs.stdout
    retried = runner.invoke(cli, ["jobs", "retry", job_id], env=env)
    assert retried.exit_code == 0 and "queued" in retried.stdout
    compared = runner.invoke(cli, ["jobs", "compare", job_id, "--metric", "loss"], env=env)
    assert compared.exit_code == 0 and job_id in compared.stdout
    refused = runner.invoke(cli, ["jobs", "pause", job_id], env=env)
    assert refused.exit_code != 0 and isinstance(refused.exception, TunelabError)


def test_cli_unreachable_server_is_a_clear_error(tunelab_home: Path) -> None:
    result = CliRunner().invoke(cli, ["jobs", "list", "--url", "http://127.0.0.1:9"])
    assert isinstance(result.exception, TunelabError) and result.exception.code == "unreachable"
    assert "tunelab serve" in result.exception.hint


def test_cli_tokens(tunelab_home: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["tokens", "create", "laptop", "--scope", "read"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("tl_")
    listed = runner.invoke(cli, ["tokens", "list"])
    assert "laptop" in listed.stdout and secret not in listed.stdout
    settings = Settings(home=tunelab_home, require_token=True)
    with thread_server(create_app(settings)) as base:
        assert Client(base, secret).list_jobs()["count"] == 0
        with pytest.raises(TunelabError) as caught:
            Client(base).list_jobs()
        assert caught.value.code == "unauthorized"
        assert runner.invoke(cli, ["tokens", "revoke", "laptop"]).exit_code == 0
        with pytest.raises(TunelabError):
            Client(base, secret).list_jobs()


def test_sdk_model_search_check_add_and_recommendations(url: str, online_hub: FakeHub) -> None:
    """The guide's SDK flow: search_models(...)[0] is a model the job body can carry."""
    with Client(url) as client:
        models = client.search_models("llama", limit=5)
        assert [m["id"] for m in models][:2] == ["meta-llama/Llama-3.1-8B-Instruct", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"]
        assert {"id", "name", "provider", "category", "parameters", "downloads", "likes", "description"} <= set(models[0])
        page = client.list_models("llama", category="Compact Models")
        assert page["hub"]["reached"] and {m["category"] for m in page["data"]} == {"Compact Models"}
        added = client.add_model("mistralai/Mistral-7B-Instruct-v0.3", provider="Mistral AI", category="instruction-following")
        assert (added["provider"], added["category"], added["likes"]) == ("Mistral AI", "Instruction Following", 1_500)
        check = client.check_model("mistralai/Mistral-7B-Instruct-v0.3")
        assert (check["status"], check["available"], check["in_collection"]) == ("on_hub", True, True)
        assert client.check_model("nobody/no-such-model")["status"] == "not_found"
        found = client.recommend_models("multilingual")["recommendations"]["multilingual"]
        assert any(r["id"] == "FacebookAI/xlm-roberta-base" and not r["causal_lm"] for r in found)
        with pytest.raises(TunelabError) as error:
            client.add_model("a/b", category="Cooking")
        assert error.value.code == "invalid_input"
        client.remove_model("mistralai/Mistral-7B-Instruct-v0.3")
        assert not any(m["in_collection"] for m in client.list_models()["data"])


def test_sdk_previews_and_stores_unicode_named_tagged_datasets(url: str, tmp_path: Path) -> None:
    """The guide's upload flow on the SDK: preview, check the columns, store under any label, list by tag."""
    csv_file = tmp_path / "dataset.csv"
    csv_file.write_text("input,output\n" + "".join(f"q{i},a{i}\n" for i in range(20)), encoding="utf-8")
    with Client(url) as client:
        preview = client.preview_csv(csv_file, rows=2)
        assert preview["statistics"] == {"total_rows": 20, "total_columns": 2, "has_required_columns": True}
        assert preview["data"] == [{"input": "q0", "output": "a0"}, {"input": "q1", "output": "a1"}]
        for name in ("Customer Support Q&A", "客服数据", "what? #1 & more"):
            stored = client.upload_dataset(csv_file, name=name, tags=["support", name[:2]])
            assert stored["name"] == name and stored["tags"] == ["support", name[:2]]
            assert client.get_dataset(name)["id"] == stored["id"]  # names with ? # & are quoted in the URL
            assert client.dataset_rows(name, limit=1)["count"] == 20
        assert client.list_datasets(tag="support")["count"] == 3
        assert [d["name"] for d in client.list_datasets(tag="客服")["data"]] == ["客服数据"]
