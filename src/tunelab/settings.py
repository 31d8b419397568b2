"""Service settings, read from the environment with the ``TUNELAB_`` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".tunelab"


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
    offline: bool = Field(
        default=False, description="Never contact the Hugging Face Hub (also HF_HUB_OFFLINE=1)."
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8420, ge=1, le=65535, description="Port the server listens on.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins.")
    require_token: bool = Field(
        default=False,
        description="Demand a bearer token on every API call even on 127.0.0.1 "
        "(always on when binding another address).",
    )

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tunelab.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
