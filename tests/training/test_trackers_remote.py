"""`report_to: mlflow` against a real MLflow tracking server, `report_to: wandb` offline, and trackers that are down.

The MLflow server is the real `mlflow server` on a free 127.0.0.1 port, started
by the test; what the run sent is read back through MLflow's own client. The
W&B run is written in W&B's offline mode and its run files are read back with
W&B's own transaction-log reader. In both, the numbers must be exactly the
ones in metrics.jsonl, at the same steps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.training.conftest import read_jsonl

from tunelab.training import run_training
from tunelab.training.trackers import metric_values

pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` with a SQLite store and served artifacts, on a free loopback port."""
    port = _free_port()
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, stdout=(folder / "server.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=5).read()
                break
            except OSError:
                log = (folder / "server.log").read_text(errors="replace")[-2000:]
                assert proc.poll() is None and time.monotonic() < deadline, f"mlflow server did not start:\n{log}"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # its workers linger on a busy machine
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _expected(run: Path) -> dict[str, dict[int, float]]:
    """Every metrics.jsonl value under the tracker's name, by step."""
    out: dict[str, dict[int, float]] = {}
    for line in read_jsonl(run / "metrics.jsonl"):
        for name, value in metric_values(line).items():
            out.setdefault(name, {})[int(line["step"])] = value
    return out


def _warnings(run: Path) -> list[dict[str, Any]]:
    return [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "warning"]


def test_mlflow_server_gets_params_every_metric_config_and_output(
    make_config: Any, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tunelab-test")
    run = tmp_path / "run"
    config = make_config(name="tracked", report_to="mlflow", eval_steps=2, output={"eval_generations": 1})
    result = run_training(config, run)
    assert result.status == "completed" and not _warnings(run)

    client = MlflowClient(tracking_uri=mlflow_server)
    run_id = json.loads((run / "trackers.json").read_text())["mlflow_run_id"]
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "tracked"
    resolved = json.loads((run / "config.json").read_text())
    assert logged.data.params["method"] == "lora" and logged.data.params["lora.r"] == str(resolved["lora"]["r"])
    assert logged.data.params["precision"] == resolved["precision"]  # the resolved value, not "auto"
    expected = _expected(run)
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss"} <= set(expected)
    for name, by_step in expected.items():  # every metric, every step, the same value
        history = {m.step: m.value for m in client.get_metric_history(run_id, name)}
        assert history == pytest.approx(by_step, rel=1e-9), name

    paths = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.json", "output"} <= paths
    output = {a.path for a in client.list_artifacts(run_id, "output")}
    assert "output/adapter" in output or any(p.endswith(".safetensors") for p in output), output
    folder = Path(client.download_artifacts(run_id, "config.json", str(tmp_path / "download")))
    assert json.loads(folder.read_text()) == resolved


def test_mlflow_server_down_costs_one_warning_and_the_run_completes(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    run = tmp_path / "run"
    started = time.monotonic()
    result = run_training(make_config(report_to="mlflow", epochs=1, output={"evaluate": False}), run)
    assert result.status == "completed" and result.exit_code == 0
    warnings = _warnings(run)
    assert len(warnings) == 1 and warnings[0]["data"] == {"code": "tracker_failed", "tracker": "mlflow"}
    assert "metrics still go to metrics.jsonl" in warnings[0]["message"]
    assert time.monotonic() - started < 120  # a few brief retries, not MLflow's default minutes
    assert len(read_jsonl(run / "metrics.jsonl")) == result.global_step


def _wandb_records(run_file: Path) -> list[Any]:
    """The protobuf records of a W&B run file (W&B's LevelDB-style log: 32 KiB blocks of
    checksum, length, type and data, after a 7-byte ``:W&B`` header).

    wandb's own Python reader went to its Go core, so the log is read here and
    each record parsed with wandb's protobuf ``Record``.
    """
    from wandb.proto import wandb_internal_pb2

    data, block = run_file.read_bytes(), 32768
    assert data[:4] == b":W&B", data[:8]
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
        elif kind == 0:
            pending = b""
    return records


def test_wandb_offline_run_files_hold_every_metric_the_config_and_the_output(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    result = run_training(make_config(name="offline", report_to="wandb", eval_steps=2), run)
    assert result.status == "completed" and not _warnings(run)

    run_id = json.loads((run / "trackers.json").read_text())["wandb_run_id"]
    (offline,) = (run / "wandb").glob(f"offline-run-*-{run_id}")
    # wandb's service process may still be flushing the run file when finish() returns: wait for history.
    deadline = time.monotonic() + 30
    while True:
        records = _wandb_records(next(offline.glob("*.wandb")))
        if any(r.WhichOneof("record_type") == "history" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(1)
    logged: dict[str, dict[int, float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            step = int(items.pop("_step"))
            for name, value in items.items():
                if not name.startswith("_"):
                    logged.setdefault(name, {})[step] = value
    expected = _expected(run)
    assert set(logged) == set(expected) and "eval/loss" in logged, set(logged) ^ set(expected)
    for name, by_step in expected.items():  # every metric, every step, the same value
        assert logged[name] == pytest.approx(by_step, rel=1e-6), (name, logged[name], by_step)

    config_updates = [r for r in records if r.WhichOneof("record_type") == "config"]
    sent = {item.key: json.loads(item.value_json) for r in config_updates for item in r.config.update}
    resolved = json.loads((run / "config.json").read_text())
    assert sent["lora.r"] == resolved["lora"]["r"] and sent["method"] == "lora" and sent["name"] == "offline"
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert [a.type for a in artifacts] == ["model"]
    entries = {entry.path for entry in artifacts[0].manifest.contents}
    assert "config.json" in entries and any(p.startswith("output/") for p in entries), entries
