"""A small local server that speaks OpenAI's fine-tuning API, for the provider tests.

OpenAI cannot be reached from the tests, so this stands in for it over real
HTTP with OpenAI's shapes: ``file``, ``fine_tuning.job``,
``fine_tuning.job.event`` (listed newest first, paged with ``after``; ids that
do not sort), ``fine_tuning.job.checkpoint``, the ``{"error": {...}}`` answer
with 401 for a wrong key, and ``/v1/files/{id}/content``. A job moves one
stage per ``GET /v1/fine_tuning/jobs/{id}`` (validating, running with metrics,
more metrics and a checkpoint, succeeded), so a test decides how far it goes by
how often the client polls, never by time; ``hold`` stops it moving.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

MODEL = "gpt-4o-mini-2024-07-18"


@dataclass
class FakeJob:
    id: str
    body: dict[str, Any]
    status: str = "validating_files"
    stage: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    fine_tuned_model: str | None = None
    result_files: list[str] = field(default_factory=list)
    polls: int = 0


@dataclass
class FakeOpenAI:
    """What the fake has been sent, and the knobs a test turns."""

    key: str = "sk-test-key"
    hold: bool = False  # jobs stop moving on
    files: dict[str, bytes] = field(default_factory=dict)
    purposes: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def event(self, job: FakeJob, message: str, kind: str = "message", data: dict[str, Any] | None = None) -> None:
        job.events.append({"id": f"ftevent-{uuid.uuid4().hex[:20]}", "object": "fine_tuning.job.event",
                           "created_at": int(time.time()), "level": "info", "message": message,
                           "type": kind, "data": data or {}})  # fmt: skip

    def advance(self, job: FakeJob) -> None:
        """One stage further (unless held or ended)."""
        if self.hold or job.status in ("succeeded", "failed", "cancelled", "paused"):
            return
        job.stage += 1
        if job.stage == 1:
            job.status = "running"
            self.event(job, "Fine-tuning job started")
            self.event(job, "Step 1/3: training loss=2.00", "metrics", {"step": 1, "train_loss": 2.0, "total_steps": 3})
        elif job.stage == 2:
            self.event(job, "Step 2/3: training loss=1.50", "metrics", {"step": 2, "train_loss": 1.5, "total_steps": 3})
            self.event(job, "Step 3/3: training loss=1.00, validation loss=1.20", "metrics",
                       {"step": 3, "train_loss": 1.0, "valid_loss": 1.2, "total_steps": 3})  # fmt: skip
            job.checkpoints.append({"id": f"ftckpt-{uuid.uuid4().hex[:12]}", "object": "fine_tuning.job.checkpoint",
                                    "created_at": int(time.time()), "fine_tuning_job_id": job.id,
                                    "fine_tuned_model_checkpoint": f"ft:{MODEL}:org::{job.id[-6:]}:ckpt-step-3",
                                    "step_number": 3, "metrics": {"step": 3, "train_loss": 1.0}})  # fmt: skip
        else:
            suffix = job.body.get("suffix") or ""
            job.status, job.fine_tuned_model = "succeeded", f"ft:{MODEL}:org:{suffix}:{job.id[-6:]}"
            result = f"file-result-{uuid.uuid4().hex[:8]}"
            self.files[result] = b"step,train_loss\n1,2.0\n2,1.5\n3,1.0\n"
            job.result_files = [result]
            self.event(job, "The job has successfully completed")

    def job_object(self, job: FakeJob) -> dict[str, Any]:
        hyper = ((job.body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
        return {"id": job.id, "object": "fine_tuning.job", "model": job.body["model"], "status": job.status,
                "fine_tuned_model": job.fine_tuned_model, "training_file": job.body["training_file"],
                "validation_file": job.body.get("validation_file"), "result_files": job.result_files,
                "trained_tokens": 1234 if job.status == "succeeded" else None, "error": None,
                "hyperparameters": hyper, "created_at": 0, "finished_at": None}  # fmt: skip


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": code}}, status_code=status)  # fmt: skip


def make_app(state: FakeOpenAI) -> FastAPI:
    """The fake's routes over ``state``."""
    app = FastAPI()

    @app.middleware("http")
    async def check_key(request: Request, call_next: Any) -> Any:
        state.calls.append(f"{request.method} {request.url.path}")
        if request.url.path.startswith("/v1/") and request.headers.get("authorization") != f"Bearer {state.key}":
            return _error(401, "Incorrect API key provided: sk-wr***ey.", "invalid_api_key")
        return await call_next(request)

    @app.get("/api/health")
    def health() -> dict[str, str]:  # what tests/api/live.thread_server waits for
        return {"status": "ok"}

    @app.post("/v1/files")
    async def upload(request: Request) -> dict[str, Any]:
        form = await request.form()
        content = await form["file"].read()  # type: ignore[union-attr]
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        state.files[file_id], state.purposes[file_id] = content, str(form.get("purpose"))
        return {"id": file_id, "object": "file", "bytes": len(content), "purpose": form.get("purpose"),
                "filename": getattr(form["file"], "filename", ""), "created_at": 0}  # fmt: skip

    @app.get("/v1/files/{file_id}/content")
    def content(file_id: str) -> Any:
        if file_id not in state.files:
            return _error(404, f"No such File object: {file_id}", "not_found")
        return PlainTextResponse(state.files[file_id].decode())

    @app.post("/v1/fine_tuning/jobs")
    async def create(request: Request) -> Any:
        body = await request.json()
        if body.get("training_file") not in state.files:
            return _error(400, f"invalid training_file: {body.get('training_file')}", "invalid_file")
        job = FakeJob(f"ftjob-{uuid.uuid4().hex[:24]}", body)
        state.jobs[job.id] = job
        state.event(job, f"Created fine-tuning job: {job.id}")
        return state.job_object(job)

    def find(job_id: str) -> FakeJob | JSONResponse:
        return state.jobs.get(job_id) or _error(404, f"No such fine-tuning job: {job_id}", "not_found")

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def get(job_id: str) -> Any:
        job = find(job_id)
        if isinstance(job, FakeJob):
            job.polls += 1
            state.advance(job)
            return state.job_object(job)
        return job

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    def events(job_id: str, limit: int = 20, after: str | None = None) -> Any:
        job = find(job_id)
        if not isinstance(job, FakeJob):
            return job
        newest = job.events[::-1]
        if after is not None:
            ids = [event["id"] for event in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        return {"object": "list", "data": newest[:limit], "has_more": len(newest) > limit}

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def checkpoints(job_id: str, limit: int = 10) -> Any:
        job = find(job_id)
        if not isinstance(job, FakeJob):
            return job
        return {"object": "list", "data": job.checkpoints[::-1][:limit], "has_more": False}

    @app.post("/v1/fine_tuning/jobs/{job_id}/{action}")
    def act(job_id: str, action: str) -> Any:
        job = find(job_id)
        if not isinstance(job, FakeJob):
            return job
        if job.status in ("succeeded", "failed", "cancelled"):
            return _error(400, f"Job {job_id} has already {job.status}", "invalid_state")
        job.status = {"cancel": "cancelled", "pause": "paused", "resume": "running"}[action]
        state.event(job, f"Job {job.status}")
        return state.job_object(job)

    return app
