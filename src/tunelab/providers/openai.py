"""Providers that speak OpenAI's fine-tuning API: OpenAI itself, and another tunelab studio.

Calls: ``POST /v1/files`` (purpose ``fine-tune``), ``POST /v1/fine_tuning/jobs``,
``GET /v1/fine_tuning/jobs/{id}``, its ``/events`` (newest first, paged with
``after``) and ``/checkpoints``, ``POST .../cancel``, ``.../pause``,
``.../resume``, and ``GET /v1/files/{id}/content`` for result files.

What differs between the two kinds is how a job's TrainConfig travels and what
comes back:

- ``openai``: OpenAI knows three hyperparameters; ``openai_hyperparameters``
  maps ``epochs`` -> ``n_epochs``, ``batch_size`` and ``learning_rate`` ->
  ``learning_rate_multiplier`` (the rate over tunelab's adapter default,
  the inverse of the studio's own ``/v1`` routes); the other fields are not
  sent, and the worker says which. The tuned model stays with the provider
  (its id is the result); result files (OpenAI's metrics CSV) are downloaded.
- ``tunelab``: a studio accepts its own TrainConfig fields under
  ``hyperparameters``, so they pass through unchanged; on success the remote
  job's output files are downloaded through its ``/api/jobs/{id}/artifacts``,
  so the tuned model is in this studio's collection like a local one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tunelab.datasets.records import Record
from tunelab.providers.base import (
    ProviderError,
    RemoteEvent,
    RemoteJob,
    RemoteState,
    Result,
    StartRequest,
)
from tunelab.providers.http import Http
from tunelab.settings import ProviderSettings
from tunelab.training.methods import ADAPTER_LEARNING_RATE

#: Pages of 100 events read per poll at most (a first poll of a long job reads up to 10,000 events).
MAX_EVENT_PAGES = 100
#: TrainConfig names OpenAI's API takes, and theirs.
OPENAI_NAMES = {"epochs": "n_epochs", "batch_size": "batch_size", "learning_rate": "learning_rate_multiplier"}


def openai_hyperparameters(hyper: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A job's hyperparameters as OpenAI's ``{n_epochs, batch_size, learning_rate_multiplier}``.

    Returns (what is sent, the names that cannot be: sorted). ``seed`` goes in
    the request's own ``seed``, ``eval_dataset`` becomes the validation file and
    ``dataset_format``/``dataset_mapping`` were applied to the uploaded records,
    so none of them is listed as unsent.
    """
    sent: dict[str, Any] = {}
    for name, value in hyper.items():
        if name in OPENAI_NAMES and value is not None:
            sent[OPENAI_NAMES[name]] = float(value) / ADAPTER_LEARNING_RATE if name == "learning_rate" else value
    applied = ("seed", "eval_dataset", "dataset_format", "dataset_mapping")
    unsent = sorted(name for name in hyper if name not in OPENAI_NAMES and name not in applied)
    return sent, unsent


def suffix_for(name: str) -> str:
    """A job name as a model suffix OpenAI accepts (letters, digits, ``-`` and ``_``, at most 40)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "tunelab"


def parse_event(item: dict[str, Any]) -> RemoteEvent:
    created = item.get("created_at")
    return RemoteEvent(
        id=str(item.get("id")),
        created_at=float(created) if isinstance(created, int | float) else None,
        level=str(item.get("level") or "info"),
        message=str(item.get("message") or ""),
        type=str(item.get("type") or "message"),
        data=item.get("data") if isinstance(item.get("data"), dict) else {},
    )


class OpenAIProvider:
    """Any service with OpenAI's fine-tuning API."""

    kind = "openai"
    #: Record kinds the service trains on (``Record.kind``).
    KINDS: tuple[str, ...] = ("chat",)

    def __init__(self, name: str, settings: ProviderSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.settings = settings
        self.http = Http(name, settings, transport)

    def close(self) -> None:
        self.http.close()

    # -- start -----------------------------------------------------------------
    def write(self, records: list[Record], target: Path) -> Path:
        """The records as JSONL, one normalised record a line; OpenAI's API trains on conversations only."""
        kinds = sorted({record.kind for record in records} - set(self.KINDS))
        if kinds:
            raise ProviderError(
                f"provider {self.name!r} ({self.kind}) trains on {' and '.join(self.KINDS)} records; this dataset "
                f"has {', '.join(kinds)} rows", "give the job a chat dataset (messages), or train it with provider "
                "'local'", code="provider_rejected_data",
            )  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(self.line(record), ensure_ascii=False) + "\n")
        return target

    def line(self, record: Record) -> dict[str, Any]:
        """One record in OpenAI's chat format: ``tools`` as a list, tool calls as ``{id, type, function}``."""
        data = record.model_dump(mode="json", exclude_none=True)
        if isinstance(data.get("tools"), str):
            data["tools"] = json.loads(data["tools"])
        for turn, message in enumerate(data.get("messages") or []):
            if message.get("tool_calls"):
                message["tool_calls"] = [{"id": f"call_{turn}_{n}", "type": "function", "function": call}
                                         for n, call in enumerate(message["tool_calls"])]  # fmt: skip
        return data

    def upload(self, path: Path) -> str:
        """Upload a JSONL file with purpose ``fine-tune``; returns the file id."""
        with path.open("rb") as handle:
            body = self.http.json("POST", "/v1/files", data={"purpose": "fine-tune"},
                                  files={"file": (path.name, handle, "application/jsonl")})  # fmt: skip
        return str(body["id"])

    def create_body(self, request: StartRequest, training: str, validation: str | None) -> tuple[dict[str, Any], list[str]]:
        """The ``POST /v1/fine_tuning/jobs`` body, and the hyperparameters it could not carry."""
        hyperparameters, unsent = openai_hyperparameters(request.hyperparameters)
        body: dict[str, Any] = {
            "model": request.model, "training_file": training, "suffix": suffix_for(request.name),
            "metadata": {"tunelab_job": request.job_id},
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        }  # fmt: skip
        if validation:
            body["validation_file"] = validation
        if isinstance(request.hyperparameters.get("seed"), int):
            body["seed"] = request.hyperparameters["seed"]
        return body, unsent

    def start(self, request: StartRequest) -> RemoteJob:
        training = self.upload(self.write(request.training, request.staging / "train.jsonl"))
        validation = None
        if request.validation:
            validation = self.upload(self.write(request.validation, request.staging / "eval.jsonl"))
        body, unsent = self.create_body(request, training, validation)
        job = self.http.json("POST", "/v1/fine_tuning/jobs", json=body)
        sent = {key: value for key, value in body.items() if key != "metadata"}
        return RemoteJob(provider=self.name, kind=self.kind, job_id=str(job["id"]), training_file=training,
                         validation_file=validation, status=job.get("status"),
                         sent={**sent, "not_sent": unsent})  # fmt: skip

    # -- follow ----------------------------------------------------------------
    def poll(self, remote: RemoteJob) -> RemoteState:
        job = self.http.json("GET", f"/v1/fine_tuning/jobs/{remote.job_id}")
        error = job.get("error") if isinstance(job.get("error"), dict) and job["error"].get("message") else None
        tokens = job.get("trained_tokens")
        return RemoteState(
            status=str(job.get("status") or "unknown"),
            fine_tuned_model=job.get("fine_tuned_model"),
            error=error,
            trained_tokens=int(tokens) if isinstance(tokens, int | float) else None,
            result_files=tuple(str(f) for f in job.get("result_files") or () if isinstance(f, str)),
        )

    def events(self, remote: RemoteJob) -> list[RemoteEvent]:
        """Events after ``remote.after``, oldest first (the API lists newest first; we page back to it)."""
        found: list[RemoteEvent] = []
        params: dict[str, Any] = {"limit": 100}
        for _ in range(MAX_EVENT_PAGES):
            page = self.http.json("GET", f"/v1/fine_tuning/jobs/{remote.job_id}/events", params=params)
            data = [item for item in page.get("data") or [] if isinstance(item, dict)]
            for item in data:
                if remote.after is not None and str(item.get("id")) == remote.after:
                    return found[::-1]
                found.append(parse_event(item))
            if not page.get("has_more") or not data:
                break
            params["after"] = str(data[-1].get("id"))
        return found[::-1]

    def checkpoints(self, remote: RemoteJob) -> list[dict[str, Any]]:
        """The remote checkpoints, oldest first: ``{id, step, model, metrics}``."""
        page = self.http.json("GET", f"/v1/fine_tuning/jobs/{remote.job_id}/checkpoints", params={"limit": 100})
        out = [
            {"id": str(item.get("id")), "step": item.get("step_number"),
             "model": item.get("fine_tuned_model_checkpoint"), "metrics": item.get("metrics") or {}}
            for item in page.get("data") or [] if isinstance(item, dict)
        ]  # fmt: skip
        return sorted(out, key=lambda c: (c["step"] if isinstance(c["step"], int) else -1, c["id"]))

    def cancel(self, remote: RemoteJob) -> None:
        self.http.json("POST", f"/v1/fine_tuning/jobs/{remote.job_id}/cancel")

    def pause(self, remote: RemoteJob) -> None:
        self.http.json("POST", f"/v1/fine_tuning/jobs/{remote.job_id}/pause")

    def resume(self, remote: RemoteJob) -> None:
        self.http.json("POST", f"/v1/fine_tuning/jobs/{remote.job_id}/resume")

    # -- result ----------------------------------------------------------------
    def fetch_result(self, remote: RemoteJob, output: Path) -> Result:
        """The result files (OpenAI: the metrics CSV) into ``output/results/``; the model stays remote."""
        state = self.poll(remote)
        files = []
        for file_id in state.result_files:
            target = output / "results" / f"{file_id}.csv"
            self.http.download(f"/v1/files/{file_id}/content", target)
            files.append(target.relative_to(output).as_posix())
        note = (f"the tuned model stays with provider {self.name!r} as {state.fine_tuned_model}; "
                "an OpenAI-compatible service hands out no weights")  # fmt: skip
        return Result(state.fine_tuned_model, files, note, weights=False)


class TunelabProvider(OpenAIProvider):
    """Another tunelab studio: TrainConfig passes through, the output comes home."""

    kind = "tunelab"
    KINDS = ("chat", "text", "preference", "labeled")
    #: Fields already applied here: the uploaded records are normalised, the eval set is its own file.
    APPLIED = ("eval_dataset", "dataset_format", "dataset_mapping")

    def create_body(self, request: StartRequest, training: str, validation: str | None) -> tuple[dict[str, Any], list[str]]:
        hyperparameters = {k: v for k, v in request.hyperparameters.items() if k not in self.APPLIED}
        body: dict[str, Any] = {"model": request.model, "training_file": training, "hyperparameters": hyperparameters,
                                "suffix": suffix_for(request.name), "metadata": {"tunelab_job": request.job_id}}  # fmt: skip
        if validation:
            body["validation_file"] = validation
        return body, []

    def line(self, record: Record) -> dict[str, Any]:
        """The normalised record as it is: a studio reads its own format."""
        return record.model_dump(mode="json", exclude_none=True)

    def fetch_result(self, remote: RemoteJob, output: Path) -> Result:
        """Download every file of the remote job's ``output/`` into ``output`` (same relative paths)."""
        state = self.poll(remote)
        listing = self.http.json("GET", f"/api/jobs/{remote.job_id}/artifacts")
        files = []
        for artifact in listing.get("data") or []:
            relative = str(artifact.get("path") or "")
            if not relative.startswith("output/") or ".." in Path(relative).parts:
                continue
            target = output / relative[len("output/") :]
            self.http.download(f"/api/jobs/{remote.job_id}/artifacts/{artifact['id']}", target)
            files.append(relative[len("output/") :])
        if not files:
            note = (f"the remote job kept no output (saveModel false there?); the tuned model's id on "
                    f"{self.name!r} is {state.fine_tuned_model}")  # fmt: skip
            return Result(state.fine_tuned_model, [], note, weights=False)
        return Result(state.fine_tuned_model, files, f"downloaded {len(files)} output files from {self.name!r}",
                      weights=True)  # fmt: skip
