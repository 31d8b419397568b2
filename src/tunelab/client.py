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

    # -- datasets -----------------------------------------------------------------------------
    def _upload(self, path: str, file: str | Path, fields: dict[str, Any]) -> Any:
        file = Path(file)
        data = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items() if v}
        with file.open("rb") as handle:
            return self.request("POST", path, files={"file": (file.name, handle)}, data=data)

    def upload_dataset(self, file: str | Path, *, name: str | None = None, description: str = "",
                       format: str | None = None, mapping: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        fields = {"name": name, "description": description, "format": format, "mapping": mapping}
        return self._upload("/api/datasets", file, fields)

    def preview_dataset(self, file: str | Path, *, format: str | None = None,
                        mapping: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        return self._upload("/api/datasets/preview", file, {"format": format, "mapping": mapping})

    def list_datasets(self, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self.request("GET", "/api/datasets", params={"limit": limit, "offset": offset})

    def get_dataset(self, dataset: str) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{dataset}")

    def dataset_versions(self, dataset: str) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{dataset}/versions")

    def dataset_rows(self, dataset: str, *, version: str | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        params = {"offset": offset, "limit": limit} | ({"version": version} if version else {})
        return self.request("GET", f"/api/datasets/{dataset}/rows", params=params)

    def dataset_quality(self, dataset: str, version: str | None = None) -> dict[str, Any]:
        return self.request("GET", f"/api/datasets/{dataset}/quality", params={"version": version} if version else {})

    def repair_dataset(self, dataset: str, version: str | None = None) -> dict[str, Any]:
        return self.request("POST", f"/api/datasets/{dataset}/repair", json={"version": version})

    def delete_dataset(self, dataset: str) -> None:
        self.request("DELETE", f"/api/datasets/{dataset}")

    # -- models -------------------------------------------------------------------------------
    def list_models(self) -> dict[str, Any]:
        return self.request("GET", "/api/models")

    def search_models(self, q: str, limit: int = 20) -> dict[str, Any]:
        return self.request("GET", "/api/models/search", params={"q": q, "limit": limit})

    def model_info(self, name: str, batch_size: int | None = None, max_length: int | None = None) -> dict[str, Any]:
        """Facts and a memory estimate per method; unset sizes are the server's TrainConfig defaults."""
        params: dict[str, Any] = {"name": name, "batch_size": batch_size, "max_length": max_length}
        return self.request("GET", "/api/models/info", params={k: v for k, v in params.items() if v is not None})

    def model_available(self, name: str) -> bool:
        return bool(self.request("GET", "/api/models/available", params={"name": name})["available"])

    def add_model(self, model_id: str, name: str = "") -> dict[str, Any]:
        return self.request("POST", "/api/models", json={"id": model_id, "name": name})

    def remove_model(self, model_id: str) -> None:
        self.request("DELETE", f"/api/models/{model_id}")

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

    def best_configuration(self, model: str, dataset: str) -> dict[str, Any]:
        return self.request("GET", "/api/configurations/best", params={"model": model, "dataset": dataset})

    # -- jobs ---------------------------------------------------------------------------------
    def create_job(self, model: str | None = None, dataset: str | None = None,
                   hyperparameters: dict[str, Any] | None = None, *, configuration_id: str | None = None,
                   name: str = "", description: str = "", tags: Sequence[str] = (),
                   save: dict[str, Any] | None = None, priority: str = "medium",
                   timeout_s: float | None = None, max_attempts: int = 3, submit: bool = True) -> dict[str, Any]:  # fmt: skip
        body: dict[str, Any] = {
            "name": name, "description": description, "tags": list(tags), "priority": priority,
            "timeout_s": timeout_s, "max_attempts": max_attempts, "submit": submit, "save": save or {},
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

    def compare_jobs(self, job_ids: Sequence[str], metrics: Sequence[str] = ("loss", "eval_loss")) -> dict[str, Any]:
        return self.request("POST", "/api/jobs/compare", json={"job_ids": list(job_ids), "metrics": list(metrics)})

    def wait_job(self, job_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the job is completed, failed or cancelled; returns the job."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get_job(job_id)
            if job["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                return job
            time.sleep(poll_s)

    def chat(self, model: str, messages: Sequence[dict[str, str]], *, max_tokens: int = 256,
             temperature: float = 0.7, top_p: float = 1.0) -> dict[str, Any]:  # fmt: skip
        """One reply from ``model`` (collection entry, completed job id or built-in id), OpenAI's shape."""
        body = {"model": model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "top_p": top_p}  # fmt: skip
        return self.request("POST", "/v1/chat/completions", json=body, timeout=httpx.Timeout(10.0, read=600.0))

    def chat_stream(self, model: str, messages: Sequence[dict[str, str]], *, max_tokens: int = 256,
                    temperature: float = 0.7, top_p: float = 1.0) -> Iterator[str]:  # fmt: skip
        """The reply as text pieces while the model writes it."""
        body = {"model": model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "top_p": top_p, "stream": True}  # fmt: skip
        with self.http.stream("POST", "/v1/chat/completions", json=body,
                              timeout=httpx.Timeout(10.0, read=600.0)) as response:  # fmt: skip
            if response.status_code >= 400:
                response.read()
                raise _error_from(response)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                piece = json.loads(line[6:])["choices"][0]["delta"].get("content")
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
