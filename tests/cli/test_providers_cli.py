"""`tunelab providers` against a real server: names, kinds, URLs, whether a key is set; never the key."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr
from tests.api.live import thread_server
from typer.testing import CliRunner

from tunelab.api import create_app
from tunelab.cli.main import app
from tunelab.settings import ProviderSettings, Settings

SECRET = "tl_peer-secret-0123456789"


def test_providers_lists_local_and_the_configured_ones(tunelab_home: Path) -> None:
    providers = {"peer": ProviderSettings(kind="tunelab", url="http://gpu-box:8420", key=SecretStr(SECRET)),
                 "openai": ProviderSettings(url="https://api.openai.com/v1")}  # fmt: skip
    with thread_server(create_app(Settings(home=tunelab_home, providers=providers, monitor_interval_s=0))) as url:
        shown = CliRunner().invoke(app, ["providers", "--url", url])
        as_json = CliRunner().invoke(app, ["providers", "--url", url, "--json"])
    assert shown.exit_code == 0, shown.output
    assert SECRET not in shown.output and SECRET not in as_json.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in shown.output.splitlines() if line.startswith("│")}  # fmt: skip
    assert rows["peer"] == ["tunelab", "http://gpu-box:8420", "yes", "TUNELAB_PROVIDER_PEER_KEY"]
    assert rows["openai"] == ["openai", "https://api.openai.com", "no", "TUNELAB_PROVIDER_OPENAI_KEY"]
    assert rows["local"] == ["local", "this studio's engine", "-", "-"]
    assert [row["name"] for row in json.loads(as_json.output)] == ["local", "openai", "peer"]
