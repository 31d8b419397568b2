"""The sweeps API, SDK and CLI: shapes, automated mode, best configuration, and errors that name the field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import Settings


@pytest.fixture
def api(tunelab_home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=tunelab_home, monitor_interval_s=0))) as test_client:
        yield test_client


def test_create_list_get_trials_cancel(api: TestClient, sweep_request: Callable[..., dict[str, Any]]) -> None:
    created = api.post("/api/sweeps", json=sweep_request(n_trials=3))
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert sweep["id"].startswith("swp-") and sweep["status"] == "running" and sweep["mode"] == "manual"
    assert sweep["search"]["learning_rate"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert sweep["trials"]["total"] == 0 and sweep["hyperparameters"]["max_steps"] == 6
    assert api.get("/api/sweeps").json()["count"] == 1
    assert api.get(f"/api/sweeps/{sweep['id']}").json()["name"] == "numbers"
    assert api.get(f"/api/sweeps/{sweep['id']}/trials").json() == {"data": [], "count": 0}
    assert api.get(f"/api/sweeps/{sweep['id']}/importances").json()["importances"] == {}
    assert_error(api.get(f"/api/sweeps/{sweep['id']}/best"), 404, "not_found")
    assert_error(api.post(f"/api/sweeps/{sweep['id']}/train-best"), 404, "not_found")
    assert api.post(f"/api/sweeps/{sweep['id']}/cancel").json()["status"] == "cancelled"
    assert_error(api.post(f"/api/sweeps/{sweep['id']}/cancel"), 409, "conflict")
    assert api.get("/api/sweeps", params={"status": "cancelled"}).json()["count"] == 1
    assert_error(api.get("/api/sweeps", params={"status": "sideways"}), 422, "invalid_input")
    assert_error(api.get("/api/sweeps/swp-nope"), 404, "not_found")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"search": {"learning_rate": {"low": 1e-2, "high": 1e-4}}}, "search.learning_rate"),
        ({"search": {"warp_factor": {"low": 1, "high": 9}}}, "search.warp_factor"),
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": None}, "n_trials"),
        ({"budget_minutes": -1}, "budget_minutes"),
        ({"objective": "eval loss; DROP"}, "objective"),
    ],
)
def test_impossible_sweeps_are_422_naming_the_field(api: TestClient, sweep_request: Callable[..., dict[str, Any]],
                                                    overrides: dict[str, Any], field: str) -> None:  # fmt: skip
    error = assert_error(api.post("/api/sweeps", json=sweep_request(**overrides)), 422, error_code(overrides))
    assert field in error["message"], error
    assert api.get("/api/sweeps").json()["count"] == 0


def error_code(overrides: dict[str, Any]) -> str:
    """Schema violations are FastAPI's ``invalid_input``; rules of the search space are ``config_invalid``."""
    return "config_invalid" if "search" in overrides or overrides.get("n_trials", 1) is None else "invalid_input"


def test_automated_mode_proposes_the_guide_bands_and_runs(api: TestClient, tiny_model_dir: Path,
                                                          dataset_file: Path) -> None:  # fmt: skip
    body = {"model": str(tiny_model_dir), "dataset": str(dataset_file), "n_trials": 4}
    proposal = api.post("/api/sweeps/propose", json=body).json()
    assert proposal["dataset_rows"] == 40 and proposal["model_parameters"] < 1_000_000_000
    search = proposal["sweep"]["search"]
    assert search["learning_rate"] == {"low": 1e-4, "high": 5e-4, "log": True}  # under 1B
    assert search["epochs"] == {"low": 5, "high": 10}  # under 1k rows
    fields = {item["field"]: item for item in proposal["explanations"]}
    assert "under 1B" in fields["learning_rate"]["reason"] and "under 1k" in fields["epochs"]["reason"]
    assert {"lora.r", "sampler", "budget"} <= set(fields) and proposal["created"] is None
    assert api.get("/api/sweeps").json()["count"] == 0  # proposing alone starts nothing
    ran = api.post("/api/sweeps/propose", json={**body, "run": True, "name": "auto"}).json()
    assert ran["created"]["mode"] == "automated" and ran["created"]["n_trials"] == 4
    assert ran["created"]["proposal"]["explanations"] == ran["explanations"]
    fixed = api.post("/api/sweeps/propose", json={**body, "hyperparameters": {"max_steps": 4}}).json()
    assert "epochs" not in fixed["sweep"]["search"]
    assert_error(api.post("/api/sweeps/propose", json={**body, "n_trials": 0}), 422, "invalid_input")
    error = assert_error(api.post("/api/sweeps/propose", json={**body, "dataset": "nothing-here"}), 422, "config_invalid")
    assert "nothing-here" in error["message"]


def test_bands_by_size() -> None:
    from tunelab.sweeps.propose import epochs_band, learning_rate_band

    assert learning_rate_band(7_000_000_000)[:2] == (1e-5, 5e-5)
    assert learning_rate_band(3_000_000_000)[:2] == (5e-5, 2e-4)
    assert learning_rate_band(135_000_000)[:2] == (1e-4, 5e-4)
    assert epochs_band(50_000)[:2] == (1, 3) and epochs_band(5_000)[:2] == (3, 5) and epochs_band(200)[:2] == (5, 10)


def test_best_configuration_lookup_answers_404_until_a_job_is_evaluated(api: TestClient, tiny_model_dir: Path,
                                                                        dataset_file: Path) -> None:  # fmt: skip
    params = {"model": str(tiny_model_dir), "dataset": str(dataset_file)}
    assert_error(api.get("/api/sweeps/best-configuration", params=params), 404, "not_found")
    assert_error(api.get("/api/sweeps/best-configuration", params={"model": "x"}), 422, "invalid_input")


def test_the_sdk_and_the_cli_start_and_show_a_sweep(tunelab_home: Path, sweep_request: Callable[..., dict[str, Any]],
                                                    tmp_path: Path) -> None:  # fmt: skip
    import yaml
    from tests.api.live import thread_server
    from typer.testing import CliRunner

    from tunelab.cli.main import app
    from tunelab.client import Client

    with thread_server(create_app(Settings(home=tunelab_home, monitor_interval_s=0))) as url:
        with Client(url) as client:
            sweep = client.create_sweep(sweep_request(n_trials=2))
            assert client.get_sweep(sweep["id"])["status"] == "running"
            assert client.sweep_trials(sweep["id"])["count"] == 0
            assert client.list_sweeps()["count"] == 1
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump(sweep_request(n_trials=2, name="from-cli")))
        runner = CliRunner(env={"COLUMNS": "200"})
        started = runner.invoke(app, ["sweep", str(path), "--no-follow", "--url", url])
        assert started.exit_code == 0, started.output
        sweep_id = started.output.strip().splitlines()[-1]
        listed = runner.invoke(app, ["sweeps", "list", "--url", url])
        assert "from-cli" in listed.output and sweep_id in listed.output
        shown = runner.invoke(app, ["sweeps", "show", sweep_id, "--url", url])
        assert shown.exit_code == 0 and "learning_rate" in shown.output and "without a completed trial" in shown.output
        assert "cancelled" in runner.invoke(app, ["sweeps", "cancel", sweep_id, "--url", url]).output
        path.write_text(yaml.safe_dump(sweep_request(search={"learning_rate": {"low": 1, "high": 0}})))
        refused = runner.invoke(app, ["sweep", str(path), "--url", url])
        assert refused.exit_code != 0 and "search.learning_rate" in str(refused.exception or refused.output)
