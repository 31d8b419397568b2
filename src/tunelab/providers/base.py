"""What a remote fine-tuning provider is to tunelab: a small protocol and the values it passes.

A provider trains somewhere else. The worker that claimed the job drives it
through five calls: ``start`` (upload the data, create the remote job),
``poll`` (its status), ``events`` (what happened since the last event we
stored), ``checkpoints`` and, once it succeeded, ``fetch_result``; ``cancel``,
``pause`` and ``resume`` carry the user's requests over. Everything the
worker must remember between calls is in ``RemoteJob`` (stored in
``jobs.remote``), so another worker can take over a job half way.

Statuses are OpenAI's fine-tuning job statuses, the lingua franca of these
services: ``validating_files``, ``queued``, ``running``, ``paused``,
``succeeded``, ``failed``, ``cancelled``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunelab.datasets.records import Record
from tunelab.errors import TunelabError

#: Remote statuses after which nothing changes any more.
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class ProviderError(TunelabError):
    """A remote call failed. ``transient``: worth retrying (unreachable, 5xx, 429); otherwise the job fails."""

    code = "provider_error"

    def __init__(self, message: str, hint: str = "", *, code: str | None = None, transient: bool = False,
                 status: int | None = None) -> None:  # fmt: skip
        super().__init__(message, hint, code=code)
        self.transient = transient
        self.status = status


@dataclass
class RemoteJob:
    """The remote side of one job: what was created there, and how far we have read it."""

    provider: str
    kind: str
    job_id: str
    training_file: str
    validation_file: str | None = None
    after: str | None = None  # id of the newest remote event already stored here
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    fine_tuned_model: str | None = None
    status: str | None = None
    sent: dict[str, Any] = field(default_factory=dict)  # what the create request asked for (no secret)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemoteJob:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class RemoteState:
    """One poll of the remote job."""

    status: str
    fine_tuned_model: str | None = None
    error: dict[str, Any] | None = None
    trained_tokens: int | None = None
    result_files: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class RemoteEvent:
    """One remote event in OpenAI's shape (``fine_tuning.job.event``)."""

    id: str
    created_at: float | None
    level: str
    message: str
    type: str  # "message" or "metrics"
    data: dict[str, Any]


@dataclass(frozen=True)
class StartRequest:
    """What the worker hands a provider to start a job: the records and the job's own configuration.

    The records were read by the engine's own loader (``training.data.read_records``,
    with the job's ``dataset_format`` and ``dataset_mapping`` applied), so a
    provider uploads them as normalised JSONL written under ``staging``.
    """

    job_id: str
    name: str
    model: str
    hyperparameters: dict[str, Any]
    training: list[Record]
    staging: Path
    validation: list[Record] | None = None


@dataclass(frozen=True)
class Result:
    """What ``fetch_result`` brought home: the tuned model's remote id and any files saved under ``output``.

    ``weights``: the files are a model this studio can load (it joins the
    collection like a local job's output); otherwise the model stays remote.
    """

    fine_tuned_model: str | None
    files: list[str] = field(default_factory=list)
    note: str = ""
    weights: bool = False


class Provider(Protocol):
    """A remote fine-tuning service (OpenAI's API or another tunelab)."""

    name: str
    kind: str

    def start(self, request: StartRequest) -> RemoteJob: ...

    def poll(self, remote: RemoteJob) -> RemoteState: ...

    def events(self, remote: RemoteJob) -> list[RemoteEvent]: ...

    def checkpoints(self, remote: RemoteJob) -> list[dict[str, Any]]: ...

    def cancel(self, remote: RemoteJob) -> None: ...

    def pause(self, remote: RemoteJob) -> None: ...

    def resume(self, remote: RemoteJob) -> None: ...

    def fetch_result(self, remote: RemoteJob, output: Path) -> Result: ...

    def close(self) -> None: ...
