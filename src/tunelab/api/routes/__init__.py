"""One router per resource; ``ROUTERS`` is what the app factory mounts, in order."""

from __future__ import annotations

from fastapi import APIRouter

from tunelab.api.routes import (
    alerts,
    analytics,
    chat,
    classify,
    configurations,
    datasets,
    ensembles,
    estimates,
    evaluations,
    experiments,
    exports,
    interventions,
    jobs,
    meta,
    models,
    openai_compat,
    providers,
    ratings,
    streams,
    sweeps,
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
    sweeps.router,
    jobs.router,
    interventions.router,
    exports.router,
    streams.router,
    training.router,
    openai_compat.router,
    providers.router,
    chat.router,
    chat.generate_router,
    classify.router,
    alerts.router,
    analytics.router,
    estimates.router,
    evaluations.router,
    experiments.router,
    ensembles.router,
    ratings.router,
]
