"""The Python SDK: ``Client(base_url, token)`` over the studio's REST API and live stream.

Every method is one HTTP call and returns plain JSON (dicts and lists), so the
SDK never lags behind the API's fields. Errors come back as ``TunelabError``
with the server's code, message and hint (HTTP status in ``details["http_status"]``), exactly
as the service raised them. ``stream_job`` follows a job over SSE, reconnecting
from the last event id it saw, so a restarted server costs no events.

    from tunelab.client import Client
    client = Client("http://127.0.0.1:8420")
    version = client.upload_dataset("alpaca.json")["version"]
    job = client.create_job(model="smollm2-135m-instruct", dataset=version["id"],
                            hyperparameters={"max_steps": 20})
    for event in client.stream_job(job["id"]):
        print(event["type"], event.get("data"))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tunelab.errors import TunelabError

DEFAULT_URL = "http://127.0.0.1:8420"


def _error_from(response: httpx.Response) -> TunelabError:
    try:
        body = response.json().get("error", {})
    except (ValueError, AttributeError):
        body = {}
    return TunelabError(
        body.get("message") or f"HTTP {response.status_code}: {response.text[:200]}",
        body.get("hint", ""),
        code=body.get("code") or "http_error",
        details={**(body.get("details") or {}), "http_status": response.status_code},
    )


class Client:
    """A connection to one tunelab server; use as a context manager or call ``close()``."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *, timeout: float = 60.0) -> None:
        self.base_url = (base_url or os.environ.get("TUNELAB_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("TUNELAB_TOKEN") or None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; JSON answer (None for 204) or ``TunelabError``."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TunelabError(
                f"cannot reach the tunelab server at {self.base_url}: {exc}",
                "start it with `tunelab serve`, or set --url / TUNELAB_URL",
                code="unreachable",
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return None if response.status_code == 204 or not response.content else response.json()

    # -- system -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/api/health")

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/api/version")

    def resources(self) -> dict[str, Any]:
        return self.request("GET", "/api/resources/current")

    def recent_resources(self, job_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit} | ({"job_id": job_id} if job_id else {})
        return self.request("GET", "/api/resources/recent", params=params)

    def providers(self) -> dict[str, Any]:
        """Where jobs can train: ``local`` and the configured remote providers (``GET /api/providers``)."""
        return self.request("GET", "/api/providers")

    def workers(self) -> dict[str, Any]:
        """Workers with their resources, heartbeat, ``alive`` and running jobs (``GET /api/workers``)."""
        return self.request("GET", "/api/workers")

    # -- alerts, notifications, analytics -----------------------------------------------------
    def alerts(self, state: str = "all", limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Threshold alerts, newest first; ``state`` is active, resolved or all."""
        return self.request("GET", "/api/alerts", params={"state": state, "limit": limit, "offset": offset})

    def alert_thresholds(self) -> dict[str, Any]:
        return self.request("GET", "/api/alerts/thresholds")

    def set_alert_thresholds(self, enabled: dict[str, bool] | None = None, **values: float | None) -> dict[str, Any]:
        """Change thresholds by the guide's names (``cpu_percent=80``); None goes back to the default."""
        body: dict[str, Any] = dict(values) | ({"enabled": enabled} if enabled is not None else {})
        return self.request("PUT", "/api/alerts/thresholds", json=body)

    def check_alerts(self) -> dict[str, Any]:
        """Run one monitor check now; answers the alerts it fired."""
        return self.request("POST", "/api/alerts/check")

    def notification_channels(self) -> dict[str, Any]:
        return self.request("GET", "/api/notifications/channels")

    def add_notification_channel(self, name: str, kind: str, **fields: Any) -> dict[str, Any]:
        """``kind`` webhook or slack with ``url=``, or email with ``to=[...]``; optional events, min_level."""
        return self.request("POST", "/api/notifications/channels", json={"name": name, "kind": kind, **fields})

    def remove_notification_channel(self, channel_id: str) -> None:
        self.request("DELETE", f"/api/notifications/channels/{quote(channel_id, safe='')}")

    def test_notification(self, channel_id: str | None = None, message: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {k: v for k, v in {"channel_id": channel_id, "message": message}.items() if v}
        return self.request("POST", "/api/notifications/test", json=body)

    def analytics(self, days: int = 30) -> dict[str, Any]:
        """Jobs per day, success rate, queue wait, CPU/GPU hours, popular models, datasets, hyperparameters."""
        return self.request("GET", "/api/analytics", params={"days": days})

    # -- datasets -----------------------------------------------------------------------------
    def _upload(self, path: str, file: str | Path, fields: dict[str, Any]) -> Any:
        file = Path(file)
        data = {k: (json.dumps(v) if isinstance(v, dict | list) else str(v)) for k, v in fields.items() if v}
        with file.open("rb") as handle:
            return self.request("POST", path, files={"file": (file.name, handle)}, data=data)

    def upload_dataset(self, file: str | Path, *, name: str | None = None, description: str = "",
                       format: str | None = None, mapping: dict[str, str] | None = None,
                       tags: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
        fields = {"name": name, "description": description, "format": format, "mapping": mapping,
                  "tags": list(tags)}  # fmt: skip
        return self._upload("/api/datasets", file, fields)

    def preview_csv(self, file: str | Path, *, rows: int = 10) -> dict[str, Any]:
        """The workflow guide's preview (``POST /api/preview-csv``) of any file tunelab reads; nothing is stored."""
        file = Path(file)
        with file.open("rb") as handle:
            return self.request("POST", "/api/preview-csv", files={"file": (file.name, handle)}, params={"rows": rows})

    def preview_dataset(self, file: str | Path, *, format: str | None = None,
                        mapping: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        return self._upload("/api/datasets/preview", file, {"format": format, "mapping": mapping})

    def list_datasets(self, limit: int = 100, offset: int = 0, tag: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset} | ({"tag": tag} if tag else {})
        return self.request("GET", "/api/datasets", params=params)

    def get_dataset(self, dataset: str) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{quote(dataset, safe='')}")

    def dataset_versions(self, dataset: str) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{quote(dataset, safe='')}/versions")

    def dataset_rows(self, dataset: str, *, version: str | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        params = {"offset": offset, "limit": limit} | ({"version": version} if version else {})
        return self.request("GET", f"/api/datasets/{quote(dataset, safe='')}/rows", params=params)

    def dataset_quality(self, dataset: str, version: str | None = None) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{quote(dataset, safe='')}/quality", params={"version": version} if version else {})

    def repair_dataset(self, dataset: str, version: str | None = None) -> dict[str, Any]:
        return self.request("POST", f"/api/datasets/{quote(dataset, safe='')}/repair", json={"version": version})

    def delete_dataset(self, dataset: str) -> None:
        self.request("DELETE", f"/api/datasets/{quote(dataset, safe='')}")

    # -- models -------------------------------------------------------------------------------
    def list_models(self, query: str | None = None, *, category: str | None = None, provider: str | None = None,
                    hub: bool | None = None, limit: int = 50) -> dict[str, Any]:
        """The model browser's page ``{data, count, hub}``: local catalog and collection, plus Hub
        matches when ``query`` is given (or ``hub=True``); ``hub`` says whether the Hub was reached."""
        params = {"query": query, "category": category, "provider": provider, "limit": limit,
                  "hub": None if hub is None else str(hub).lower()}
        return self.request("GET", "/api/models", params={k: v for k, v in params.items() if v is not None})

    def search_models(self, query: str | None = None, limit: int = 10, *, category: str | None = None,
                      provider: str | None = None) -> list[dict[str, Any]]:
        """The guide's search: a list of models (Hub text-generation models by downloads, then local
        matches), each with id, name, provider, category, parameters, downloads, likes, description."""
        params = {"query": query, "limit": limit, "category": category, "provider": provider}
        return self.request("GET", "/api/models/search", params={k: v for k, v in params.items() if v is not None})

    def check_model(self, model_id: str) -> dict[str, Any]:
        """Whether ``model_id`` can be used now and why (``available``, ``status``, ``reason``, ``hub``)."""
        return self.request("GET", f"/api/models/check/{quote(model_id, safe='')}")

    def recommend_models(self, use_case: str | None = None) -> dict[str, Any]:
        """Suggested models per use case (code, instruction_following, resource_constrained, multilingual)."""
        params = {"use_case": use_case} if use_case else {}
        return self.request("GET", "/api/models/recommendations", params=params)

    def model_info(self, name: str, batch_size: int | None = None, max_length: int | None = None) -> dict[str, Any]:
        """Facts and a memory estimate per method; unset sizes are the server's TrainConfig defaults."""
        params: dict[str, Any] = {"name": name, "batch_size": batch_size, "max_length": max_length}
        return self.request("GET", "/api/models/info", params={k: v for k, v in params.items() if v is not None})

    def model_available(self, name: str) -> bool:
        return bool(self.request("GET", "/api/models/available", params={"name": name})["available"])

    def estimate(self, config: dict[str, Any] | None = None, *, rows: int | None = None,
                 tokens_per_row: int | None = None, budget: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Memory split, devices it fits, largest batch, time and cost of a TrainConfig (``POST /api/estimate``)."""
        body = {"config": config or {}, "rows": rows, "tokens_per_row": tokens_per_row, "budget": budget}
        return self.request("POST", "/api/estimate", json={k: v for k, v in body.items() if v is not None})

    def advise(self, **use_case: Any) -> dict[str, Any]:
        """Fine-tuning or RAG? (``POST /api/advisor``: data_volume, knowledge_type, update_frequency, ...)."""
        return self.request("POST", "/api/advisor", json=use_case)

    def add_model(self, model_id: str, name: str = "", provider: str = "", category: str = "") -> dict[str, Any]:
        """Add to the collection with the guide's body; provider and category are derived when empty."""
        body = {"id": model_id, "name": name, "provider": provider, "category": category}
        return self.request("POST", "/api/models", json=body)

    def remove_model(self, model_id: str) -> None:
        self.request("DELETE", f"/api/models/{quote(model_id, safe='/')}")

    # -- configurations -----------------------------------------------------------------------
    def save_configuration(self, model: str, dataset: str, hyperparameters: dict[str, Any] | None = None,
                           name: str = "") -> dict[str, Any]:  # fmt: skip
        body = {"model": model, "dataset": dataset, "hyperparameters": hyperparameters or {}, "name": name}
        return self.request("POST", "/api/configurations", json=body)

    def get_configuration(self, config_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/configurations/{config_id}")

    def list_configurations(self, model: str | None = None, dataset: str | None = None) -> dict[str, Any]:
        params = {k: v for k, v in {"model": model, "dataset": dataset}.items() if v}
        return self.request("GET", "/api/configurations", params=params)

    def best_configuration(self, model: str | None = None, dataset: str | None = None,
                           mode: str | None = None) -> dict[str, Any]:  # fmt: skip
        """The lowest eval loss over all saved configurations, narrowed by any filter given."""
        params = {k: v for k, v in {"model": model, "dataset": dataset, "mode": mode}.items() if v}
        return self.request("GET", "/api/configurations/best", params=params)

    # -- jobs ---------------------------------------------------------------------------------
    def create_job(self, model: str | None = None, dataset: str | None = None,
                   hyperparameters: dict[str, Any] | None = None, *, configuration_id: str | None = None,
                   name: str = "", description: str = "", tags: Sequence[str] = (),
                   save: dict[str, Any] | None = None, priority: str = "medium",
                   timeout_s: float | None = None, max_attempts: int = 3, submit: bool = True,
                   provider: str = "local") -> dict[str, Any]:  # fmt: skip
        """Create (and queue) a job; ``provider`` names where it trains (``providers()`` lists them)."""
        body: dict[str, Any] = {
            "name": name, "description": description, "tags": list(tags), "priority": priority,
            "timeout_s": timeout_s, "max_attempts": max_attempts, "submit": submit, "save": save or {},
            "provider": provider,
        }  # fmt: skip
        if configuration_id:
            body["configuration_id"] = configuration_id
        else:
            body["configuration"] = {"model": model, "dataset": dataset, "hyperparameters": hyperparameters or {}}
        return self.request("POST", "/api/jobs", json=body)

    def list_jobs(self, status: str | Sequence[str] | None = None, tag: str | None = None,
                  search: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:  # fmt: skip
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = [status] if isinstance(status, str) else list(status)
        params |= {k: v for k, v in {"tag": tag, "search": search}.items() if v}
        return self.request("GET", "/api/jobs", params=params)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/jobs/{job_id}/cancel")

    def pause_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/jobs/{job_id}/pause")

    def resume_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/jobs/{job_id}/resume")

    def retry_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/jobs/{job_id}/retry")

    # Interventions on a running job: each answers {job, request} at once; the engine acts at its
    # next step and answers with an event (request["answer_event"]) carrying data.request_id.
    def checkpoint_job(self, job_id: str) -> dict[str, Any]:
        """Save a checkpoint now and keep training."""
        return self.request("POST", f"/api/jobs/{job_id}/checkpoint")

    def set_learning_rate(self, job_id: str, learning_rate: float) -> dict[str, Any]:
        """Train on at ``learning_rate`` from the next step (the schedule continues from it)."""
        return self.request("POST", f"/api/jobs/{job_id}/learning-rate", json={"learning_rate": learning_rate})

    def stop_early(self, job_id: str) -> dict[str, Any]:
        """End now with the current weights: the output is saved and the job completes."""
        return self.request("POST", f"/api/jobs/{job_id}/stop-early")

    def delete_job(self, job_id: str) -> None:
        self.request("DELETE", f"/api/jobs/{job_id}")

    def job_events(self, job_id: str, after: int = 0, limit: int = 500,
                   types: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
        params: dict[str, Any] = {"after": after, "limit": limit} | ({"type": list(types)} if types else {})
        return self.request("GET", f"/api/jobs/{job_id}/events", params=params)

    def job_metrics(self, job_id: str, last_n: int | None = None) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}/metrics", params={"last_n": last_n} if last_n else {})

    def job_checkpoints(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}/checkpoints")

    def job_artifacts(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}/artifacts")

    def download_artifact(self, job_id: str, artifact_id: int, dest: str | Path) -> Path:
        """Stream one artifact to ``dest`` (a folder: the server's file name is used)."""
        dest = Path(dest)
        with self.http.stream("GET", f"/api/jobs/{job_id}/artifacts/{artifact_id}") as response:
            if response.status_code >= 400:
                response.read()
                raise _error_from(response)
            if dest.is_dir():
                disposition = response.headers.get("content-disposition", "")
                name = disposition.split("filename=")[-1].strip('"; ') or f"{job_id}-{artifact_id}"
                dest = dest / Path(name).name
            with dest.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return dest

    # -- exports ------------------------------------------------------------------------------
    def create_export(self, job_id: str, format: str = "merged", *, push_to_hub: str | None = None,
                      private: bool = True) -> dict[str, Any]:  # fmt: skip
        """Start exporting a completed job (``merged``, ``adapter``, ``gguf``, ``gguf-q8_0``, ``gguf-adapter``, ``onnx``).

        ``push_to_hub`` (``user/name``) also uploads the export to the Hub with the server's token;
        the finished record's ``push`` says where it went or why the Hub refused.
        """
        body: dict[str, Any] = {"format": format}
        if push_to_hub:
            body["push_to_hub"] = {"repo_id": push_to_hub, "private": private}
        return self.request("POST", f"/api/jobs/{job_id}/exports", json=body)

    def list_exports(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}/exports")

    def get_export(self, job_id: str, export_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}/exports/{export_id}")

    def wait_export(self, job_id: str, export_id: int, *, timeout: float = 1800.0, poll: float = 1.0) -> dict[str, Any]:
        """Poll an export until it is completed or failed (a failed one raises its error)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get_export(job_id, export_id)
            if record["status"] == "failed":
                error = record.get("error") or {}
                raise TunelabError(error.get("message", "export failed"), error.get("hint", ""),
                                   code=error.get("code", "export_failed"))  # fmt: skip
            if record["status"] == "completed" or time.monotonic() > deadline:
                return record
            time.sleep(poll)

    def download_export(self, job_id: str, export_id: int, dest: str | Path) -> Path:
        """Stream a finished export (a .zip) to ``dest`` (a file, or a folder to keep the server's name)."""
        dest = Path(dest)
        with self.http.stream("GET", f"/api/jobs/{job_id}/exports/{export_id}/download") as response:
            if response.status_code >= 400:
                response.read()
                raise _error_from(response)
            if dest.is_dir():
                disposition = response.headers.get("content-disposition", "")
                dest = dest / Path(disposition.split("filename=")[-1].strip('"; ') or f"{job_id}-{export_id}.zip").name
            with dest.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return dest

    def export_script(self, job_id: str, *, framework: str = "transformers", output_dir: str = "output") -> str:
        """The standalone training script (plain transformers + peft) that reproduces the job."""
        params = {"framework": framework, "output_dir": output_dir}
        return str(self.request("GET", f"/api/jobs/{job_id}/exports/script", params=params)["script"])

    def compare_jobs(self, job_ids: Sequence[str], metrics: Sequence[str] = ("loss", "eval_loss")) -> dict[str, Any]:
        return self.request("POST", "/api/jobs/compare", json={"job_ids": list(job_ids), "metrics": list(metrics)})

    def submit_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/jobs`` with a body as the workflow guide writes it (``configuration``, ``modelSaving``...)."""
        return self.request("POST", "/api/jobs", json=body)

    # -- training monitor (the guide's "Training API") ----------------------------------------
    def training_status(self, job_id: str) -> dict[str, Any]:
        """One job: status, iteration of total, progress, latest losses, ETA, queue wait."""
        return self.request("GET", f"/api/training/status/{job_id}")

    def training_summary(self) -> dict[str, Any]:
        """Jobs per state, the running ones with progress and throughput, queue wait times."""
        return self.request("GET", "/api/training/summary")

    def training_losses(self, last_n: int | None = None, job_id: str | None = None) -> dict[str, Any]:
        """Loss points of ``job_id`` (default: the running job, else the latest started)."""
        params = {k: v for k, v in {"last_n": last_n, "job_id": job_id}.items() if v is not None}
        return self.request("GET", "/api/training/losses", params=params)

    def training_resources(self) -> dict[str, Any]:
        return self.request("GET", "/api/training/resources/current")

    def follow_training(self, job_id: str, after: int | None = None, *, retry_s: float = 1.0,
                        max_retries: int = 60) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Yield ``/ws/training/{id}`` messages until the job ends, reconnecting from the cursor.

        ``training`` messages (one per logged step: ``training.train_loss``,
        ``iteration``, ``total``, ``progress``, ``eta_s``, ``resources``) and
        ``status`` messages; the last is ``{"type": "end", "status": ...}``. A
        dropped connection reconnects with ``?after=<last id>``, so nothing is
        missed or repeated. Errors from the server raise ``TunelabError``.
        """
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        ws_url = "ws" + self.base_url[len("http"):] + f"/ws/training/{job_id}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        cursor, failures = after, 0
        while True:
            url = ws_url + (f"?after={cursor}" if cursor is not None else "")
            try:
                with connect(url, additional_headers=headers, open_timeout=10) as socket:
                    for raw in socket:
                        message = json.loads(raw)
                        failures = 0
                        if message.get("type") == "error":
                            error = message["error"]
                            raise TunelabError(error.get("message", "stream error"), error.get("hint", ""),
                                               code=error.get("code", "error"))  # fmt: skip
                        if message.get("id") is not None:
                            cursor = int(message["id"])
                        yield message
                        if message.get("type") == "end":
                            return
            except (OSError, WebSocketException):
                pass  # server restarting or connection dropped: reconnect from the cursor
            failures += 1
            if failures > max_retries:
                raise TunelabError(
                    f"lost the training stream of job {job_id} and could not reconnect",
                    f"check the server at {self.base_url}; resume with after={cursor}",
                    code="unreachable",
                )
            time.sleep(retry_s)

    def wait_job(self, job_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the job is completed, failed or cancelled; returns the job."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get_job(job_id)
            if job["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                return job
            time.sleep(poll_s)

    # -- evaluations ---------------------------------------------------------------------------
    def create_evaluation(self, model: str, data: str | None = None, *, metrics: Sequence[str] | None = None,
                          against: str | Sequence[str] | None = None, probe: bool = True,
                          judge: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
        """Queue an evaluation (runs on the server in the background); ``judge`` is ``{url, model, ...}``;
        ``against`` one model or several, compared side by side."""
        if against is not None and not isinstance(against, str):
            against = list(against)
        body = {"model": model, "data": data, "metrics": list(metrics) if metrics else None, "against": against,
                "probe": probe, "judge": judge, **fields}  # fmt: skip
        return self.request("POST", "/api/evaluations", json={k: v for k, v in body.items() if v is not None})

    def list_evaluations(self, job_id: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params = {"limit": limit, "offset": offset, **({"job_id": job_id} if job_id else {})}
        return self.request("GET", "/api/evaluations", params=params)

    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        """One evaluation with its per-row generations, scores and judge results."""
        return self.request("GET", f"/api/evaluations/{quote(evaluation_id, safe='')}")

    def wait_evaluation(self, evaluation_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the evaluation is completed or failed; returns it (rows included)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.get_evaluation(evaluation_id)
            if found["status"] in ("completed", "failed") or time.monotonic() > deadline:
                return found
            time.sleep(poll_s)

    def rate(self, evaluation_id: str, row: int, verdict: str, *, side_a: str = "model", side_b: str = "against",
             comment: str = "", rater: str = "") -> dict[str, Any]:  # fmt: skip
        """Rate one row: is ``side_a``'s reply ``better``, ``worse`` or a ``tie`` against ``side_b``'s?"""
        body = {"row": row, "verdict": verdict, "side_a": side_a, "side_b": side_b, "comment": comment, "rater": rater}
        return self.request("POST", f"/api/evaluations/{quote(evaluation_id, safe='')}/ratings", json=body)

    def list_ratings(self, evaluation_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/evaluations/{quote(evaluation_id, safe='')}/ratings")

    def ratings_summary(self, evaluation_id: str) -> dict[str, Any]:
        """Win rates per pair of sides, with counts, ties and a 95% Wilson interval."""
        return self.request("GET", f"/api/evaluations/{quote(evaluation_id, safe='')}/ratings/summary")

    def _text(self, path: str) -> str:
        try:
            response = self.http.get(path)
        except httpx.TransportError as exc:
            raise TunelabError(f"cannot reach the tunelab server at {self.base_url}: {exc}",
                               "start it with `tunelab serve`, or set --url / TUNELAB_URL", code="unreachable") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.text

    def job_metrics_csv(self, job_id: str) -> str:
        """A job's logged metrics as CSV text (one row per step)."""
        return self._text(f"/api/jobs/{quote(job_id, safe='')}/metrics.csv")

    def job_metrics_json(self, job_id: str) -> dict[str, Any]:
        """Steps, final values, the engine's evaluation and the latest stored evaluation of a job."""
        return self.request("GET", f"/api/jobs/{quote(job_id, safe='')}/metrics.json")

    def job_loss_chart(self, job_id: str) -> str:
        """A job's loss and eval-loss curves as SVG text."""
        return self._text(f"/api/jobs/{quote(job_id, safe='')}/charts/loss.svg")

    def chat(self, model: str, messages: Sequence[dict[str, str]], *, max_tokens: int = 256,
             temperature: float = 0.7, top_p: float = 1.0, **sampling: Any) -> dict[str, Any]:  # fmt: skip
        """One reply from ``model`` (collection entry such as ``ft:<base>:<name>:<job id>``, completed job id
        or built-in id), OpenAI's shape; ``sampling`` takes ``top_k``, ``seed``, ``stop``, ``n``."""
        body = {"model": model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "top_p": top_p, **sampling}  # fmt: skip
        return self.request("POST", "/v1/chat/completions", json=body, timeout=httpx.Timeout(10.0, read=600.0))

    def classify(self, model: str, text: str, text_pair: str | None = None) -> dict[str, Any]:
        """``/v1/classify``: ``{model, label, scores, value}`` from a trained classifier (or regressor)."""
        body: dict[str, Any] = {"model": model, "input": text}
        if text_pair is not None:
            body["input_pair"] = text_pair
        return self.request("POST", "/v1/classify", json=body, timeout=httpx.Timeout(10.0, read=600.0))

    def chat_stream(self, model: str, messages: Sequence[dict[str, str]], *, max_tokens: int = 256,
                    temperature: float = 0.7, top_p: float = 1.0, **sampling: Any) -> Iterator[str]:  # fmt: skip
        """The reply as text pieces while the model writes it."""
        body = {"model": model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "top_p": top_p, **sampling, "stream": True}  # fmt: skip
        yield from self._pieces("/v1/chat/completions", body, lambda choice: choice["delta"].get("content"))

    def complete(self, model: str, prompt: str, *, max_tokens: int = 16, temperature: float = 1.0,
                 **sampling: Any) -> dict[str, Any]:  # fmt: skip
        """``/v1/completions``: ``prompt`` continued as is (no chat template), OpenAI's ``text_completion``."""
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, **sampling}
        return self.request("POST", "/v1/completions", json=body, timeout=httpx.Timeout(10.0, read=600.0))

    def complete_stream(self, model: str, prompt: str, *, max_tokens: int = 16, temperature: float = 1.0,
                        **sampling: Any) -> Iterator[str]:  # fmt: skip
        """``complete`` as text pieces while the model writes them."""
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
                **sampling, "stream": True}  # fmt: skip
        yield from self._pieces("/v1/completions", body, lambda choice: choice.get("text"))

    def generate(self, prompt: str, max_length: int = 200, *, model: str | None = None, **fields: Any) -> str:
        """The guide's ``POST /generate``: the reply text (``max_length`` counts prompt and reply tokens)."""
        body = {"prompt": prompt, "max_length": max_length, **({"model": model} if model else {}), **fields}
        answer = self.request("POST", "/generate", json=body, timeout=httpx.Timeout(10.0, read=600.0))
        return str(answer["response"])

    def _pieces(self, path: str, body: dict[str, Any], text: Any) -> Iterator[str]:
        """The first choice's text from a server-sent event stream; an error event raises ``TunelabError``."""
        with self.http.stream("POST", path, json=body, timeout=httpx.Timeout(10.0, read=600.0)) as response:
            if response.status_code >= 400:
                response.read()
                raise _error_from(response)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    error = event["error"]
                    raise TunelabError(error.get("message", "generation failed"), error.get("hint", ""),
                                       code=error.get("code", "error"))  # fmt: skip
                for choice in event.get("choices") or []:
                    piece = text(choice) if choice.get("index", 0) == 0 else None
                    if piece:
                        yield piece

    def stream_job(self, job_id: str, after: int | None = None, *, retry_s: float = 1.0,
                   max_retries: int = 60) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Yield the job's events (SSE) until it ends; reconnect with the cursor on drops.

        Each event is ``{id, job_id, type, created_at, data}``; the last is
        ``{"type": "end", "status": ...}``. ``after`` resumes after that event id.
        """
        cursor, failures = after, 0
        while True:
            headers = {"Last-Event-ID": str(cursor)} if cursor is not None else {}
            try:
                with self.http.stream("GET", f"/api/jobs/{job_id}/stream", headers=headers,
                                      timeout=httpx.Timeout(10.0, read=60.0)) as response:  # fmt: skip
                    if response.status_code >= 400:
                        response.read()
                        raise _error_from(response)
                    for event in _parse_sse(response.iter_lines()):
                        failures = 0
                        if event.get("type") == "end":
                            yield event
                            return
                        cursor = int(event["id"])
                        yield event
            except (httpx.TransportError, httpx.RemoteProtocolError):
                pass  # server restarting or connection dropped: reconnect from the cursor
            failures += 1
            if failures > max_retries:
                raise TunelabError(
                    f"lost the stream of job {job_id} and could not reconnect",
                    f"check the server at {self.base_url}; resume with after={cursor}",
                    code="unreachable",
                )
            time.sleep(retry_s)

    # -- experiments and ensembles ----------------------------------------------------------
    def create_experiment(self, name: str, variants: Sequence[dict[str, Any]], description: str = "") -> dict[str, Any]:
        """An A/B experiment; ``variants`` are ``{name, model, weight}`` with weights summing to 1.

        Chat with it as ``chat("exp:" + name, ...)``; pass ``user`` there for sticky routing.
        """
        body = {"name": name, "variants": list(variants), "description": description}
        return self.request("POST", "/api/experiments", json=body)

    def list_experiments(self) -> dict[str, Any]:
        return self.request("GET", "/api/experiments")

    def get_experiment(self, name: str) -> dict[str, Any]:
        """One experiment with per-variant results (requests, latency, tokens, ratings with 95% intervals, tests)."""
        return self.request("GET", f"/api/experiments/{quote(name, safe='')}")

    def stop_experiment(self, name: str) -> dict[str, Any]:
        return self.request("POST", f"/api/experiments/{quote(name, safe='')}/stop")

    def experiment_feedback(self, name: str, response_id: str, *, rating: str | None = None,
                            score: float | None = None, comment: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Rate one reply of the experiment: ``rating`` "up" or "down", or ``score`` 1-5."""
        body = {"response_id": response_id, "rating": rating, "score": score, "comment": comment}
        return self.request("POST", f"/api/experiments/{quote(name, safe='')}/feedback",
                            json={k: v for k, v in body.items() if v is not None})  # fmt: skip

    def create_ensemble(self, name: str, members: Sequence[str], method: str = "average",
                        description: str = "") -> dict[str, Any]:  # fmt: skip
        """A group of models served as one (``ens:NAME``): ``average`` probabilities or majority ``vote``."""
        body = {"name": name, "members": list(members), "method": method, "description": description}
        return self.request("POST", "/api/ensembles", json=body)

    def list_ensembles(self) -> dict[str, Any]:
        return self.request("GET", "/api/ensembles")

    def get_ensemble(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/ensembles/{quote(name, safe='')}")

    def delete_ensemble(self, name: str) -> None:
        self.request("DELETE", f"/api/ensembles/{quote(name, safe='')}")

    # -- sweeps -------------------------------------------------------------------------------
    def create_sweep(self, sweep: dict[str, Any]) -> dict[str, Any]:
        """Start a sweep (``SweepConfig`` fields: model, dataset, hyperparameters, search, sampler, n_trials ...)."""
        return self.request("POST", "/api/sweeps", json=sweep)

    def propose_sweep(self, model: str, dataset: str, *, n_trials: int | None = None,
                      budget_minutes: float | None = None, hyperparameters: dict[str, Any] | None = None,
                      run: bool = False, name: str = "", parallel: int = 1) -> dict[str, Any]:  # fmt: skip
        """Automated mode: the proposed sweep with a reason per choice; ``run=True`` starts it."""
        body = {"model": model, "dataset": dataset, "n_trials": n_trials, "budget_minutes": budget_minutes,
                "hyperparameters": hyperparameters or {}, "run": run, "name": name, "parallel": parallel}  # fmt: skip
        return self.request("POST", "/api/sweeps/propose", json=body)

    def list_sweeps(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset} | ({"status": status} if status else {})
        return self.request("GET", "/api/sweeps", params=params)

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/sweeps/{quote(sweep_id, safe='')}")

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/sweeps/{quote(sweep_id, safe='')}/cancel")

    def sweep_trials(self, sweep_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/sweeps/{quote(sweep_id, safe='')}/trials")

    def sweep_importances(self, sweep_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/sweeps/{quote(sweep_id, safe='')}/importances")

    def sweep_best(self, sweep_id: str) -> dict[str, Any]:
        """The best trial and its saved configuration (stable id, mode automated)."""
        return self.request("GET", f"/api/sweeps/{quote(sweep_id, safe='')}/best")

    def train_best(self, sweep_id: str, name: str = "", max_steps: int | None = None) -> dict[str, Any]:
        """Queue a job from the sweep's best configuration; returns the job."""
        body = {"name": name, "max_steps": max_steps}
        return self.request("POST", f"/api/sweeps/{quote(sweep_id, safe='')}/train-best", json=body)

    def best_configuration_for(self, model: str, dataset: str) -> dict[str, Any]:
        """The best configuration for a model and dataset from completed jobs and sweeps, with its source."""
        return self.request("GET", "/api/sweeps/best-configuration", params={"model": model, "dataset": dataset})

    def wait_sweep(self, sweep_id: str, timeout_s: float = 3600.0, poll_s: float = 2.0) -> dict[str, Any]:
        """Poll until the sweep is no longer running; returns it."""
        deadline = time.monotonic() + timeout_s
        while True:
            sweep = self.get_sweep(sweep_id)
            if sweep["status"] != "running" or time.monotonic() > deadline:
                return sweep
            time.sleep(poll_s)


def _parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Server-sent events -> the JSON ``data`` of each event (comments and retry ignored)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
