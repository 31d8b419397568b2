"""First use, as a newcomer meets it: wrong settings, the shipped examples, `tunelab train` runs in the studio.

Commands run as a user runs them (a subprocess of the real CLI), and their
output is checked for the one error line and hint, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.training.conftest import identity_file, make_config  # noqa: F401 - the engine tests' fixtures

from tunelab.settings import Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def tunelab(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    code = "from tunelab.cli.main import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TUNELAB_OFFLINE": "1", **(env or {})}, cwd=cwd)  # fmt: skip


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: str) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 2, done.stderr
    assert lines[0].startswith(f"Error [{code}]: ") and lines[1].startswith("Hint: "), lines
    return done.stderr


@pytest.mark.parametrize("command", [["tokens", "list"], ["datasets", "list"], ["serve", "--port", "1"]])
def test_bad_database_urls_print_one_line_and_create_nothing(command: list[str], tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "dir"
    for url in (f"sqlite:///{outside}/x.db", "postgres://nobody@127.0.0.1:1/x", "not a url",
                "postgresql+psycopg://nobody@127.0.0.1:1/x"):  # fmt: skip
        text = assert_one_line_error(tunelab(*command, env={"TUNELAB_DATABASE_URL": url}), "database_unavailable")
        assert "TUNELAB_DATABASE_URL" in text or "database" in text
    assert not (tmp_path / "outside").exists()  # a typo in a URL never creates folders outside the home


def test_unwritable_home_prints_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for command in (["tokens", "list"], ["serve", "--port", "1"], ["datasets", "list"]):
        text = assert_one_line_error(tunelab(*command, env={"TUNELAB_HOME": str(a_file / "home")}), "home_unwritable")
        assert str(a_file / "home") in text and "TUNELAB_HOME" in text
    pulled = tunelab("models", "pull", "smollm2-135m-instruct", env={"TUNELAB_HOME": str(a_file / "home")})
    assert_one_line_error(pulled, "os_error")


def test_shipped_examples_name_only_files_inside_the_repo() -> None:
    import yaml

    for path in sorted(EXAMPLES.glob("*.yaml")):
        dataset = yaml.safe_load(path.read_text()).get("dataset", "")
        target = (path.parent / dataset).resolve()
        if target.exists() or path.name == "alpaca-lora.yaml":
            assert target.is_relative_to(REPO), f"{path.name} trains on {target}, outside the repository"
    licence = (EXAMPLES / "data" / "README.md").read_text()
    assert "alpaca_en_demo.json" in licence and "Apache License 2.0" in licence
    assert (EXAMPLES / "data" / "LICENSE-LLaMA-Factory").is_file()
    rows = json.loads((EXAMPLES / "data" / "alpaca_en_demo.json").read_text())
    assert len(rows) == 256 and {"instruction", "input", "output"} <= set(rows[0])


def _studio_job(settings: Settings, job_id: str) -> Any:
    from tunelab.store.db import session_factory
    from tunelab.store.models import Job

    with session_factory(settings.resolved_database_url)() as session:
        return session.get(Job, job_id)


def test_alpaca_example_trains_from_a_fresh_clone_and_shows_in_the_studio(
    tiny_model_dir: Path, tunelab_home: Path, tmp_path: Path
) -> None:
    """The example runs from any folder (its data ships in examples/data) and the run is a studio job."""
    run = tmp_path / "run"
    done = tunelab("train", str(EXAMPLES / "alpaca-lora.yaml"), f"model={tiny_model_dir}", "max_steps=3",
                   "max_rows=48", "batch_size=4", "gradient_accumulation_steps=1", "max_length=128",
                   "eval_steps=0", "save_steps=0", "output.eval_generations=1", "output.max_new_tokens=4",
                   "--run-dir", str(run), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["dataset"] == str(EXAMPLES / "data" / "alpaca_en_demo.json")
    assert "Recorded in the studio as job" in done.stdout
    job_id = done.stdout.split("Recorded in the studio as job", 1)[1].split()[0]

    from tunelab.api import create_app
    from tunelab.serving.registry import chat_location
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home, monitor_interval_s=0)
    with TestClient(create_app(settings)) as client:
        listed = {job["id"]: job for job in client.get("/api/jobs").json()["data"]}
        job = listed[job_id]
        assert (job["source"], job["status"], job["name"]) == ("cli", "completed", "alpaca-lora")
        assert job["run_dir"] == str(run.resolve()) and job["config"]["hyperparameters"]["max_steps"] == 3
        metrics = client.get(f"/api/jobs/{job_id}/metrics").json()["data"]
        assert [m["step"] for m in metrics] == [1, 2, 3]
        compared = client.post("/api/jobs/compare", json={"job_ids": [job_id], "metrics": ["loss", "final_loss"]})
        assert compared.status_code == 200, compared.text
        assert job_id in json.dumps(compared.json())
        artifacts = {a["path"] for a in client.get(f"/api/jobs/{job_id}/artifacts").json()["data"]}
        assert "config.json" in artifacts and any(p.startswith("output/") for p in artifacts)
        # The tuned model is listed once, by the job's name and base, and chat finds it by any of them.
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        tuned = [m for m in models if m.endswith(f":{job_id}")]
        assert tuned == [f"ft:{tiny_model_dir.name}:alpaca-lora:{job_id}"], models
    with session_factory(settings.resolved_database_url)() as session:
        locations = {chat_location(session, settings, name) for name in (tuned[0], "alpaca-lora", job_id)}
    assert len(locations) == 2 and all(str(run.resolve()) in where for where in locations)  # adapter or run dir


def test_a_stopped_cli_run_is_paused_in_the_studio_and_resumes_from_the_terminal(
    make_config: Any, tunelab_home: Path, tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    from tests.training.test_resume import PauseAt

    from tunelab.errors import Conflict
    from tunelab.jobs import service
    from tunelab.jobs.cli_runs import record_run
    from tunelab.store.db import session_factory
    from tunelab.training import run_training

    settings = Settings(home=tunelab_home)
    run, config = tmp_path / "run", make_config(name="stop-me", output={"evaluate": False})
    first = run_training(config, run, PauseAt(run, 2))
    assert first.status == "stopped"
    job = record_run(settings, config.model_dump(mode="json"), run, first.status, resume_command="tunelab train x")
    assert (job.status, job.source, job.global_step) == ("paused", "cli", 2)
    with session_factory(settings.resolved_database_url)() as session, pytest.raises(Conflict) as refused:
        service.resume_job(session, job.id)  # the checkpoint is in the terminal's folder
    assert "tunelab train x" in refused.value.hint

    second = run_training(config, run)
    again = record_run(settings, config.model_dump(mode="json"), run, second.status)
    assert (again.id, again.status, again.attempts) == (job.id, "completed", 2)
    with session_factory(settings.resolved_database_url)() as session:
        steps = [m.step for m in service.list_metrics(session, job.id)]
    assert steps == list(range(1, second.global_step + 1))  # resumed: no step twice, none missing


def test_a_failed_cli_run_keeps_its_error(make_config: Any, tunelab_home: Path, tmp_path: Path) -> None:  # noqa: F811
    from tunelab.jobs.cli_runs import record_run

    run = tmp_path / "run"
    run.mkdir()
    error = {"code": "out_of_memory", "message": "ran out of memory", "hint": "lower batch_size"}
    config = make_config(name="broken")
    job = record_run(Settings(home=tunelab_home), config.model_dump(mode="json"), run, "failed", error=error)
    assert job.status == "failed" and job.error["code"] in ("out_of_memory", "training_failed")
    assert job.error["hint"]


def test_nothing_is_recorded_without_a_home(tmp_path: Path) -> None:
    from tunelab.jobs.cli_runs import should_record

    assert not should_record(Settings(home=tmp_path / "never-made"))
    assert should_record(Settings(home=tmp_path))
    assert should_record(Settings(home=tmp_path / "never-made", database_url="sqlite:///x.db"))


def test_an_empty_prompt_or_reply_in_a_csv_is_a_warning(tmp_path: Path) -> None:
    from tunelab.datasets import inspect_file

    path = tmp_path / "support.csv"
    path.write_text("input,output\nhello,world\n,an answer with no question\na question with no answer,\n")
    report = inspect_file(path)
    found = {(i.code, i.row, i.line, i.severity) for i in report.issues if i.code.startswith("empty_")}
    assert found == {("empty_prompt", 1, 3, "warning"), ("empty_reply", 2, 4, "warning")}
    done = tunelab("datasets", "inspect", str(path))
    assert "empty_prompt" in done.stdout and "empty_reply" in done.stdout


def test_hub_fallback_is_one_calm_line_when_offline() -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    from tunelab.models.builtin import _fallback_note

    calm = _fallback_note("org/model", LocalEntryNotFoundError("An error happened while trying to locate the files"))
    assert "not reachable" in calm and "error" not in calm.lower() and "\n" not in calm
    loud = _fallback_note("org/model", PermissionError("token refused"))
    assert "token refused" in loud and "failed" in loud


def test_serve_keeps_the_access_log_quiet_unless_asked(tunelab_home: Path) -> None:
    import signal
    import socket
    import time
    import urllib.request

    def run_server(*flags: str) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        code = "from tunelab.cli.main import run; run()"
        proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--no-worker", "--port", str(port), *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "TUNELAB_OFFLINE": "1", "TUNELAB_MONITOR_INTERVAL_S": "0"})  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    for _ in range(3):
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs", timeout=5).read()
                    break
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                    time.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        return out

    quiet = run_server()
    assert "tunelab serving on" in quiet and '"GET /api/jobs' not in quiet
    assert "setuptools" not in quiet.lower() and "Traceback" not in quiet
    assert quiet.count('"GET /api/jobs HTTP/1.1" 200') == 0
    assert run_server("--access-log").count('"GET /api/jobs HTTP/1.1" 200') == 3
