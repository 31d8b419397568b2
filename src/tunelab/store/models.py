"""The studio's tables, as SQLAlchemy 2 declarative models.

One module so the schema reads in one place and Alembic's autogenerate sees
every table. Times are stored as UTC; JSON columns hold the parts that vary by
job (config, error, event data) so the schema stays small. ``to_dict`` gives the
JSON-ready shape the API and the CLI show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# A job's priority is stored as a small integer so the queue can ORDER BY it
# (ascending: high runs first); the names are what every answer shows. The
# encoding is a storage fact, so it lives with the table; jobs/states.py parses
# user input against it.
PRIORITIES: dict[str, int] = {"high": 0, "medium": 1, "low": 2}
PRIORITY_NAMES: dict[int, str] = {value: key for key, value in PRIORITIES.items()}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on both SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    """Declarative base; ``to_dict`` serialises every column."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column in self.__table__.columns:
            value = getattr(self, column.key)
            out[column.key] = iso(value) if isinstance(value, datetime) else value
        return out


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    latest_version_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetVersion(Base):
    """An immutable normalised copy; ``id`` is the datasets package's content hash."""

    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[str | None] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(32), default="")
    num_rows: Mapped[int] = mapped_column(Integer, default=0)
    num_invalid: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelEntry(Base):
    """A model in the user's collection (built-in, local folder or Hub id)."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32), default="local")
    location: Mapped[str] = mapped_column(Text, default="")
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trust_remote_code: Mapped[bool] = mapped_column(default=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Configuration(Base):
    """A saved {model, dataset, hyperparameters}; ``id`` hashes its canonical JSON."""

    __tablename__ = "configurations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(300), index=True)
    dataset: Mapped[str] = mapped_column(String(300), index=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "status", "priority", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    save_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    configuration_id: Mapped[str | None] = mapped_column(String(64))
    retry_of: Mapped[str | None] = mapped_column(String(64))
    # Where the job came from: "studio" (API, dashboard, SDK) or "cli" (a
    # `tunelab train` run recorded so it shows in the dashboard and compare).
    source: Mapped[str] = mapped_column(String(16), default="studio", server_default="studio")
    # Set by the job's automatic evaluation: true when the tuned model answers fewer
    # retention-probe questions right than its base (null: not evaluated).
    regression: Mapped[bool | None] = mapped_column(Boolean)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="created", index=True)
    requested_action: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    timeout_s: Mapped[float | None] = mapped_column(Float)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    run_dir: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[float | None] = mapped_column(Float)
    global_step: Mapped[int | None] = mapped_column(Integer)
    tail_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Why a queued job is not claimed ("waiting for resources: needs 1 GPU, workers have none"); 0009.
    wait_reason: Mapped[str | None] = mapped_column(Text)
    # Where the job trains: "local" (this studio's engine) or a provider named in the settings; 0010.
    provider: Mapped[str] = mapped_column(String(64), default="local", server_default="local")
    # A remote job's ids, the newest remote event stored, its checkpoints and tuned model (tunelab.providers).
    remote: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def stopping(self) -> dict[str, Any] | None:
        """While a running job is being paused/cancelled: ``{action, after_step}`` ("pausing after step N").

        The worker writes it into ``tail_state`` from the engine's heartbeat;
        before its next tick the request alone gives the action and the
        engine's last heartbeat the step.
        """
        if self.status != "running":
            return None
        state = self.tail_state or {}
        if state.get("stopping"):
            return state["stopping"]
        if self.requested_action in ("pause", "cancel"):
            return {"action": self.requested_action, "after_step": (state.get("engine") or {}).get("stop_after")}
        return None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("tail_state", None)
        out["priority"] = PRIORITY_NAMES.get(self.priority, str(self.priority))
        out["jobUid"] = self.id  # the workflow guide's name for the id
        out["stopping"] = self.stopping()
        out["resources"] = (self.save_options or {}).get("resources")
        return out


class JobEvent(Base):
    """One item of a job's stream; ``id`` is the resume cursor (SSE ``Last-Event-ID``)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Metric(Base):
    """One logged step; unique per (job, step) so a resumed run upserts, never duplicates."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_metrics_job_step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    progress: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Artifact(Base):
    """A file the job produced; ``path`` is relative to the job's run directory."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "path", name="uq_artifacts_job_path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResourceSample(Base):
    __tablename__ = "resource_samples"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    ram_used: Mapped[int | None] = mapped_column(BigInteger)
    ram_total: Mapped[int | None] = mapped_column(BigInteger)
    disk_used: Mapped[int | None] = mapped_column(BigInteger)
    disk_total: Mapped[int | None] = mapped_column(BigInteger)
    process_rss: Mapped[int | None] = mapped_column(BigInteger)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class WorkerRecord(Base):
    """A worker process and what it can run, renewed with its heartbeat (``tunelab.jobs.resources``; 0009)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{index, name, memory_total}]
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    gpu_memory_total: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes, all GPUs together
    cpu_count: Mapped[int] = mapped_column(Integer, default=1)
    ram_total: Mapped[int] = mapped_column(BigInteger, default=0)
    mps: Mapped[bool] = mapped_column(Boolean, default=False)
    current_job_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 hash."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("token_hash", None)
        return out


class Alert(Base):
    """A threshold crossed (rule, measured value, threshold); open until ``resolved_at`` is set.

    One open row per rule: the monitor loop fires an alert once when a rule is
    crossed and resolves it when the value is back under the threshold, so a
    condition that lasts an hour is one alert, not 120 notifications.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertThreshold(Base):
    """A threshold changed through the API; rules without a row use the settings' defaults."""

    __tablename__ = "alert_thresholds"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NotificationChannel(Base):
    """Where alerts and job notifications go: a generic webhook, a Slack webhook or an email list."""

    __tablename__ = "notification_channels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_level: Mapped[str] = mapped_column(String(16), default="info")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class Sweep(Base):
    """A hyperparameter search; its Optuna study (``study_name``) lives in the same database.

    ``driver_id`` / ``driver_lease_expires_at`` let one sweep driver at a time
    (of any number of ``tunelab serve`` processes) ask for trials, so trials are
    never created twice.
    """

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(300))
    dataset: Mapped[str] = mapped_column(String(300))
    base: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    search: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sampler: Mapped[str] = mapped_column(String(16))
    pruner: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    objective: Mapped[str] = mapped_column(String(100), default="eval_loss")
    direction: Mapped[str] = mapped_column(String(16), default="minimize")
    n_trials: Mapped[int | None] = mapped_column(Integer)
    budget_minutes: Mapped[float | None] = mapped_column(Float)
    parallel: Mapped[int] = mapped_column(Integer, default=1)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[str] = mapped_column(String(16), default="manual")
    proposal: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    study_name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    best_trial: Mapped[int | None] = mapped_column(Integer)
    best_value: Mapped[float | None] = mapped_column(Float)
    best_configuration_id: Mapped[str | None] = mapped_column(String(64))
    driver_id: Mapped[str | None] = mapped_column(String(200))
    driver_lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SweepTrial(Base):
    """One trial of a sweep and the one job that runs it (unique both ways: exactly once)."""

    __tablename__ = "sweep_trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number", name="uq_sweep_trials_sweep_number"),
        UniqueConstraint("job_id", name="uq_sweep_trials_job"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    optuna_trial_id: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="running")
    value: Mapped[float | None] = mapped_column(Float)
    reported_step: Mapped[int | None] = mapped_column(Integer)
    intermediate: Mapped[list[list[float]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Evaluation(Base):
    """One evaluation of a model (against another or its base) on a dataset and/or the retention probe.

    ``summary`` holds everything but the per-row results (metrics per side,
    retention, judge summary, timings); ``rows`` holds each row's prompt,
    reference, generations and scores, read only when one evaluation is shown.
    """

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | cli | job
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(Text)
    against: Mapped[str | None] = mapped_column(Text)
    dataset: Mapped[str | None] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    regression: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_dict(self, rows: bool = False) -> dict[str, Any]:
        out = super().to_dict()
        if not rows:
            out.pop("rows", None)
        return out


class Rating(Base):
    """A person's verdict on one evaluation row for a pair of sides: ``side_a`` is better, worse or tie.

    Sides are the evaluation's keys (``model``, ``against``, ``against_2`` ...),
    stored in side order (a verdict given the other way round is flipped), so
    one rater has one verdict per row and pair: rating again replaces it.
    """

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint(
            "evaluation_id",
            "row_index",
            "side_a",
            "side_b",
            "rater",
            name="uq_ratings_row_pair_rater",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(
        ForeignKey("evaluations.id", ondelete="CASCADE"), index=True
    )
    row_index: Mapped[int] = mapped_column(Integer)
    side_a: Mapped[str] = mapped_column(String(32))
    side_b: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(8))  # better | worse | tie (side_a against side_b)
    comment: Mapped[str] = mapped_column(Text, default="")
    rater: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Experiment(Base):
    """An A/B experiment: variants (models the registry serves) with a traffic split; ``exp:<name>`` in chat.

    ``variants`` is a list of ``{name, model, weight}`` whose weights sum to 1
    (``serving.experiments.check_variants``); ``status`` is running or stopped.
    """

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="running")
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExperimentRequest(Base):
    """One chat request an experiment routed: which variant answered, for whom, how fast; its feedback."""

    __tablename__ = "experiment_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    response_id: Mapped[str] = mapped_column(String(64), unique=True)
    variant: Mapped[str] = mapped_column(String(64))
    user: Mapped[str | None] = mapped_column(String(200))
    latency_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[str | None] = mapped_column(String(8))  # up | down
    score: Mapped[float | None] = mapped_column(Float)  # 1-5
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Ensemble(Base):
    """A named group of models served and evaluated as one (``ens:<name>``): averaged probabilities or a vote."""

    __tablename__ = "ensembles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[str] = mapped_column(String(16), default="average")  # average | vote
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
