"""System: health (no token needed, for load balancers), version, resources.

Health is 200 ``{"status": "ok"}`` only while the store answers and every
embedded worker's loop is alive and ticked within ``worker_stale_s``; otherwise
503 (``unhealthy`` naming the reason, or the store's own 503), so a load
balancer or supervisor restarts a server whose worker is gone.
"""

from __future__ import annotations

import platform
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from tunelab import __version__
from tunelab.api.deps import ReadScope, SessionDep, SettingsDep

router = APIRouter(prefix="/api", tags=["system"])
#: Routes at the root: the workflow guide's health script curls ``/health`` on each port.
root_router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness: the database and each worker's heartbeat (no token needed)")
def health(request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    from tunelab.errors import ServiceUnhealthy
    from tunelab.jobs.worker import health_report

    report = health_report(session, request.app.state.workers, settings.worker_stale_s)
    if report["problems"]:
        raise ServiceUnhealthy(
            "; ".join(report["problems"]),
            "see the server log for why the worker stopped; restart `tunelab serve`",
            details={"workers": report["workers"], "running_jobs": report["running_jobs"]},
        )
    return {**report, "version": __version__}


@root_router.get("/health", summary="Liveness at the root (same as /api/health)")
def root_health(request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    return health(request, session, settings)


@router.get("/version", summary="tunelab, Python and library versions")
def version(_: ReadScope) -> dict[str, Any]:
    import fastapi

    return {
        "tunelab": __version__,
        "python": platform.python_version(),
        "fastapi": fastapi.__version__,
        "platform": platform.platform(),
    }


@router.get("/resources/current", summary="CPU, RAM, disk and GPU now")
async def resources_current(settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    from tunelab.monitor import sample_resources

    sample = await run_in_threadpool(sample_resources, settings.home)
    return sample if isinstance(sample, dict) else sample.model_dump(mode="json")


@router.get("/workers", summary="Workers: their GPUs, CPUs and RAM, heartbeat, running jobs and leases")
def workers(session: SessionDep, settings: SettingsDep, _: ReadScope) -> dict[str, Any]:
    from tunelab.jobs.resources import list_workers

    data = list_workers(session, settings.worker_stale_s)
    return {"data": data, "count": len(data)}


@router.get("/resources/recent", summary="Stored resource samples, newest last")
def resources_recent(
    session: SessionDep,
    _: ReadScope,
    job_id: Annotated[str | None, Query(description="Only samples taken for this job.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    from tunelab.monitor import recent_samples

    rows = recent_samples(session, job_id=job_id, limit=limit)
    data = [row if isinstance(row, dict) else row.to_dict() for row in rows]
    return {"data": data, "count": len(data)}
