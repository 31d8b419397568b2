"""`tunelab deploy k8s|compose|systemd`: the files pass the Kubernetes schemas (kubernetes-validate),
the Compose specification's JSON schema (vendored in tests/fixtures/compose-spec with its licence)
and `systemd-analyze verify`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli.main import app

COMPOSE_SCHEMA = (
    Path(__file__).resolve().parents[1] / "fixtures" / "compose-spec" / "compose_spec.json"
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "identity-lora.yaml"


def _deploy(*args: str) -> str:
    result = CliRunner().invoke(app, ["deploy", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _k8s_errors(document: dict[str, Any]) -> str | None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    try:
        kubernetes_validate.validate(document, latest_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        return str(error)
    return None


def _by_kind(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name)


def test_kubernetes_manifests_pass_the_schemas(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes_validate")
    _deploy("k8s", "--out", str(tmp_path), "--gpus", "2", "--workers", "3", "--train", str(EXAMPLE),
            "--artifacts-url", "s3://team/tunelab", "--artifacts-endpoint-url", "http://minio:9000")  # fmt: skip
    studio = list(yaml.safe_load_all((tmp_path / "tunelab-studio.yaml").read_text()))
    training = list(yaml.safe_load_all((tmp_path / "tunelab-train-identity-lora.yaml").read_text()))
    for document in studio + training:
        assert _k8s_errors(document) is None, (document["kind"], _k8s_errors(document))
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in studio)
    assert ("Deployment", "tunelab-api") in kinds and ("Deployment", "tunelab-postgres") in kinds
    assert ("Service", "tunelab-api") in kinds and ("Secret", "tunelab-postgres") in kinds
    workers = _by_kind(studio, "Deployment", "tunelab-worker")
    assert workers["spec"]["replicas"] == 3
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["tunelab", "worker"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 2}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        env["TUNELAB_ARTIFACTS_URL"] == "s3://team/tunelab"
        and "tunelab-postgres:5432" in env["TUNELAB_DATABASE_URL"]
    )
    job = _by_kind(training, "Job", "tunelab-train-identity-lora")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == 2
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]
    config_map = _by_kind(training, "ConfigMap", "tunelab-train-identity-lora")
    assert config_map["data"]["train.yaml"] == EXAMPLE.read_text()
    # The check can fail: a wrong field is caught.
    broken = json.loads(json.dumps(job))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"][
        "nvidia.com/gpu"
    ] = [2]
    assert _k8s_errors(broken) is not None


def test_compose_file_passes_the_compose_specification(tmp_path: Path) -> None:
    import jsonschema

    _deploy("compose", "--out", str(tmp_path), "--gpus", "1")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    document = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    assert [e.message for e in validator.iter_errors(document)] == []
    assert set(document["services"]) == {"api", "postgres", "worker"}
    worker = document["services"]["worker"]
    assert worker["command"] == ["tunelab", "worker"] and worker["shm_size"] == "8gb"
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1
    password = (tmp_path / ".env").read_text().strip().partition("=")[2]
    assert len(password) >= 24 and password not in (tmp_path / "docker-compose.yml").read_text()
    document["services"]["api"]["ports"] = "8420"  # not a list: the schema says so
    assert list(validator.iter_errors(document))


def test_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    _deploy("systemd", "--out", str(tmp_path), "--user", "root")
    unit = tmp_path / "tunelab-worker.service"
    text = unit.read_text()
    assert "ExecStart=/" in text and " worker --worker-id %H" in text and "KillMode=mixed" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit was written but not verified")
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("ExecStart=/", "ExecStart=not-a-path/"))
    assert (
        subprocess.run([analyze, "verify", str(broken)], capture_output=True, timeout=60).returncode
        != 0
    )


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    _deploy("compose", "--out", str(tmp_path))
    before = (tmp_path / ".env").read_text()
    result = CliRunner().invoke(app, ["deploy", "compose", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "already exist" in str(result.exception)
    assert (tmp_path / ".env").read_text() == before
    _deploy("compose", "--out", str(tmp_path), "--force")
    assert (tmp_path / ".env").read_text() != before
