"""One router per resource; ``ROUTERS`` is what the app factory mounts, in order."""

from __future__ import annotations

from fastapi import APIRouter

from tunelab.api.routes import (
    alerts,
    analytics,
    chat,
    configurations,
    datasets,
    interventions,
    jobs,
    meta,
    models,
    openai_compat,
    streams,
    system,
    training,
)

ROUTERS: list[APIRouter] = [
    system.router,
    system.root_router,
    meta.router,
    datasets.router,
    datasets.preview_router,
    models.router,
    configurations.router,
    jobs.router,
    interventions.router,
    streams.router,
    training.router,
    openai_compat.router,
    chat.router,
    alerts.router,
    analytics.router,
]
