"""Service settings, read from the environment with the ``TUNELAB_`` prefix."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".tunelab"


#: ``TUNELAB_PROVIDER_<NAME>_<PART>``: one provider's URL, key or kind, e.g. TUNELAB_PROVIDER_PEER_KEY.
_PROVIDER_ENV = re.compile(r"^TUNELAB_PROVIDER_([A-Z0-9_]+?)_(URL|KEY|KIND)$")


class ProviderSettings(BaseModel):
    """One remote fine-tuning service a job may name (``provider: NAME``); see docs/providers.md.

    Only settings carry the URL and the key: a job body names a provider, never
    an address or a secret, so whoever may create jobs cannot point the worker
    anywhere or read a key back.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "tunelab"] = Field(
        default="openai", description="openai: any OpenAI-compatible fine-tuning API; tunelab: another tunelab "
        "studio (TrainConfig fields passed through, the tuned weights downloaded).",
    )
    url: str = Field(default="", description="Base URL, e.g. https://api.openai.com or http://gpu-box:8420.")
    key: SecretStr = Field(default=SecretStr(""), description="API key or tunelab token (never shown).")
    poll_s: float = Field(default=5.0, gt=0, le=3600, description="Seconds between polls of the remote job.")
    request_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Longest one HTTP request may take.")
    unreachable_s: float = Field(
        default=600.0, gt=0, le=7 * 86400,
        description="How long the provider may stay unreachable before the job fails (it is retried until then).",
    )


class Settings(BaseSettings):
    """Everything that differs between installations; one place, env-overridable."""

    model_config = SettingsConfigDict(env_prefix="TUNELAB_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Root of all stored data.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite under the home directory."
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest dataset file accepted, in bytes."
    )
    judge_url: str = Field(
        default="", description="OpenAI-compatible base URL of the LLM judge of every job's after-run evaluation "
        "(a job's output.eval_judge_url overrides it); empty: no judge.",
    )
    judge_model: str = Field(default="", description="Model name sent to the judge (output.eval_judge_model overrides).")
    judge_api_key: SecretStr = Field(
        default=SecretStr(""), description="Bearer key of the judge; only here, never in a job's config (never shown)."
    )
    preview_max_bytes: int = Field(
        default=50 * 1024**2,
        ge=1,
        description="Largest file POST /api/preview-csv accepts, in bytes (the guide's 50 MB); "
        "TUNELAB_PREVIEW_MAX_BYTES.",
    )
    read_cache_s: float = Field(
        default=0.5, ge=0, le=60,
        description="On PostgreSQL, how long the API keeps an answer of the polled job reads while nothing in "
        "its process commits (TUNELAB_READ_CACHE_S): how much later other processes' writes can show (on SQLite "
        "any commit is seen at once); 0: keep none.",
    )
    offline: bool = Field(
        default=False, description="Never contact the Hugging Face Hub (also HF_HUB_OFFLINE=1)."
    )
    hub_endpoint: str = Field(
        default="", description="Hugging Face Hub address for model search; empty means HF_ENDPOINT or huggingface.co."
    )
    hub_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Longest wait for the Hub in a search or check; then local results only."
    )
    hub_retry_s: float = Field(
        default=30.0, ge=0, description="After the Hub failed, how long searches skip it before trying again."
    )
    # Connection pools, one per role, so API load can never take the worker's connections.
    api_pool_size: int = Field(default=10, ge=1, le=1000, description="Store connections the API keeps open.")
    api_pool_overflow: int = Field(
        default=30, ge=0, le=1000,
        description="Extra API connections opened under load, closed when idle (size + overflow = 40, the "
        "request thread pool, so sync routes never wait for a connection).",
    )
    api_pool_timeout_s: float = Field(
        default=2.0, gt=0, le=300,
        description="Longest an API request waits for a store connection; then 503 with Retry-After.",
    )
    worker_pool_size: int = Field(default=4, ge=1, le=1000, description="Store connections a worker process keeps open.")
    worker_pool_overflow: int = Field(default=4, ge=0, le=1000, description="Extra worker connections under load.")
    worker_pool_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Longest a worker tick waits for a store connection; then it retries."
    )
    worker_backoff_max_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="Longest pause between a worker's retries after a failed tick (the pause doubles from 0.5 s).",
    )
    worker_stale_s: float = Field(
        default=120.0, gt=0, description="/api/health turns 503 when an embedded worker's loop has not ticked for this long."
    )
    stop_no_progress_s: float = Field(
        default=900.0, gt=0, le=7 * 86400,
        description="Pause, cancel and shutdown wait for the running step and its checkpoint however long "
        "they take; an engine that shows no progress (no step ended, no checkpoint or heartbeat written) "
        "for this many seconds is killed (TUNELAB_STOP_NO_PROGRESS_S).",
    )
    engine_nice: int | None = Field(
        default=None, ge=-20, le=19,
        description="CPU priority (nice value) of training engines (TUNELAB_ENGINE_NICE); unset: the worker's own. "
        "Higher lets the API and other programs go first on a busy CPU (training slows); lower puts training "
        "first (API answers slow under load) and needs CAP_SYS_NICE.",
    )
    runs_root: Path | None = Field(
        default=None, description="Where this machine's run directories go (TUNELAB_RUNS_ROOT); empty: <home>/runs.",
    )
    artifacts_url: str = Field(
        default="", description="Shared storage for datasets, checkpoints and outputs (TUNELAB_ARTIFACTS_URL): empty keeps "
        "them in the home and run directories only; a folder every machine mounts, or any fsspec URL (s3://bucket/prefix).",
    )
    artifacts_endpoint_url: str = Field(
        default="", description="Endpoint of an S3-compatible store (MinIO, Ceph...) for s3:// artifacts; "
        "credentials come from the usual AWS_* variables.",
    )
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra fsspec storage options as JSON (TUNELAB_ARTIFACTS_OPTIONS).",
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8420, ge=1, le=65535, description="Port the server listens on.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins.")
    price_per_gpu_hour: float = Field(
        default=0.0, ge=0, description="What one GPU hour costs (any currency); `cost` in job comparisons."
    )
    price_per_cpu_hour: float = Field(
        default=0.0, ge=0, description="What one hour of a job trained without a GPU costs; `cost` in comparisons."
    )
    allow_server_paths: list[Path] = Field(
        default_factory=list,
        description="Folders an admin token may name server paths in (job datasets, models, checkpoints); "
        "empty: the API takes stored ids and catalog names only. TUNELAB_ALLOW_SERVER_PATHS='[\"/data\"]'.",
    )
    chat_max_prompt_tokens: int = Field(
        default=8192, ge=1, description="Longest prompt /v1/chat/completions accepts, in tokens (also capped "
        "by the model's context)."
    )
    chat_queue_size: int = Field(
        default=64, ge=1, le=1000, description="Chat requests per model running or waiting; more get 503."
    )
    chat_max_tokens: int = Field(
        default=8192, ge=1, le=1_000_000, description="Largest `max_tokens` a chat, completion or /generate "
        "request may ask for; more is a 400 (the reply is also capped by the context the prompt leaves)."
    )
    serve_max_batch: int = Field(
        default=16, ge=1, le=256, description="Requests decoded together in one batch per base model; more wait."
    )
    serve_max_adapters: int = Field(
        default=4, ge=1, le=256, description="LoRA adapters kept loaded per base model (least recently used "
        "dropped)."
    )
    require_token: bool = Field(
        default=False,
        description="Demand a bearer token on every API call even on 127.0.0.1 "
        "(always on when binding another address).",
    )
    # Threshold alerts (defaults from the users' guide); `PUT /api/alerts/thresholds` overrides them in the store.
    alert_cpu_percent: float = Field(default=90.0, ge=0, le=100, description="Alert when CPU use reaches this percent.")
    alert_memory_percent: float = Field(
        default=85.0, ge=0, le=100, description="Alert when RAM use reaches this percent."
    )
    alert_gpu_temp: float = Field(
        default=85.0, ge=0, le=200, description="Alert when any GPU reaches this temperature (°C)."
    )
    alert_error_rate: float = Field(
        default=5.0, ge=0, le=100, description="Alert when this percent of the jobs that ended in the window failed."
    )
    alert_response_time: float = Field(
        default=2000.0, ge=0, description="Alert when the API's p95 response time reaches this many milliseconds."
    )
    alert_error_rate_window_s: float = Field(
        default=24 * 3600.0, gt=0, description="Jobs that ended this many seconds back count for the error rate."
    )
    monitor_interval_s: float = Field(
        default=30.0, ge=0, description="Seconds between the API process's resource samples and alert checks; 0 turns the loop off."
    )
    notify_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds one notification delivery (webhook or SMTP) may take."
    )
    smtp_host: str = Field(default="localhost", description="SMTP server for email channels.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str = Field(default="", description="SMTP login; empty sends without logging in.")
    smtp_password: str = Field(default="", description="SMTP password (only from the environment, never stored).")
    smtp_from: str = Field(default="tunelab@localhost", description="Sender address of notification emails.")
    smtp_security: str = Field(
        default="none", pattern="^(none|starttls|ssl)$", description="none, starttls or ssl (implicit TLS)."
    )

    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict,
        description="Remote fine-tuning services by name, as JSON (TUNELAB_PROVIDERS='{\"peer\": {\"kind\": "
        "\"tunelab\", \"url\": \"http://gpu-box:8420\"}}'); TUNELAB_PROVIDER_<NAME>_URL, _KEY and _KIND add or "
        "override one (keys belong there, not in the JSON). `local` (this studio's engine) is built in.",
    )

    @model_validator(mode="after")
    def _provider_environment(self) -> Settings:
        """Fold ``TUNELAB_PROVIDER_<NAME>_URL/_KEY/_KIND`` into ``providers`` (name lower-cased)."""
        found: dict[str, dict[str, Any]] = {}
        for variable, value in os.environ.items():
            match = _PROVIDER_ENV.match(variable)
            if match:
                found.setdefault(match.group(1).lower(), {})[match.group(2).lower()] = value
        for name, parts in found.items():
            current = self.providers[name].model_dump() if name in self.providers else {}
            self.providers[name] = ProviderSettings.model_validate({**current, **parts})
        return self

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.runs_root or self.home / "runs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tunelab.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
