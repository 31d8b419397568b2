"""One router per resource; ``ROUTERS`` is what the app factory mounts, in order."""

from __future__ import annotations

from fastapi import APIRouter

from tunelab.api.routes import (
    chat,
    configurations,
    datasets,
    jobs,
    meta,
    models,
    openai_compat,
    streams,
    system,
)

ROUTERS: list[APIRouter] = [
    system.router,
    meta.router,
    datasets.router,
    models.router,
    configurations.router,
    jobs.router,
    streams.router,
    openai_compat.router,
    chat.router,
]
