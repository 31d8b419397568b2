"""`tunelab experiments` and `tunelab ensembles` against a live studio (uvicorn on a loopback port)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.settings import Settings

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture
def studio_url(tunelab_home: Path, tiny_model_dir: Path) -> Iterator[str]:
    from tests.api.live import thread_server

    from tunelab.api import create_app
    from tunelab.store.catalog import add_model
    from tunelab.store.db import session_factory

    settings = Settings(home=tunelab_home)
    app = create_app(settings)
    with session_factory(settings.resolved_database_url)() as session:
        add_model(session, "tiny-a", location=str(tiny_model_dir))
        add_model(session, "tiny-b", location=str(tiny_model_dir))
    with thread_server(app) as url:
        yield url


def test_experiments_commands(studio_url: str) -> None:
    from tunelab.cli.main import app
    from tunelab.client import Client

    runner = CliRunner()
    made = runner.invoke(app, ["experiments", "create", "greeting", "--variant", "control=tiny-a:0.5",
                               "--variant", "tuned=tiny-b:0.5", "--url", studio_url])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "experiment greeting (exp:greeting): running, 0 requests" in made.output
    with Client(studio_url) as client:
        replies = [client.chat("exp:greeting", [{"role": "user", "content": "Hi"}], max_tokens=1, user=f"u{i}")
                   for i in range(6)]  # fmt: skip
    first = replies[0]
    rated = runner.invoke(
        app,
        ["experiments", "feedback", "greeting", first["id"], "--rating", "up", "--url", studio_url],
    )
    assert rated.exit_code == 0 and f"(variant {first['experiment']['variant']})" in rated.output
    shown = runner.invoke(app, ["experiments", "show", "greeting", "--json", "--url", studio_url])
    results = json.loads(shown.output)["results"]
    assert results["requests"] == 6 and sum(v["rated"] for v in results["variants"]) == 1
    listed = runner.invoke(app, ["experiments", "list", "--url", studio_url])
    assert listed.exit_code == 0 and "greeting" in listed.output
    stopped = runner.invoke(app, ["experiments", "stop", "greeting", "--url", studio_url])
    assert stopped.exit_code == 0 and "stopped after 6 requests" in stopped.output

    env = {**os.environ, "TUNELAB_URL": studio_url}
    bad = subprocess.run([sys.executable, "-m", "tunelab", "experiments", "create", "again", "--variant",
                          "a=tiny-a:0.6", "--variant", "b=nope:0.6"], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert (
        "Error [invalid_input]" in bad.stderr
        and "'nope'" in bad.stderr
        and "sum to 1.2" in bad.stderr
    )
    assert "Hint: give each variant" in bad.stderr
