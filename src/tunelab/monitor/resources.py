"""Resource samples: CPU, RAM, disk, the training process tree, and GPUs via NVML.

``sample_resources`` is cheap (no blocking CPU interval after the first call)
so the worker can take one every few seconds while a job runs and the API can
answer "current resources" on demand. GPUs are read through NVML (the
``nvidia-ml-py`` package's ``pynvml``) only when it imports and initialises;
otherwise ``gpus`` is an empty list, never an error.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.store.models import ResourceSample


def _process_tree_rss(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def gpu_stats() -> list[dict[str, Any]]:
    """Per-GPU utilisation and memory through NVML; [] without NVIDIA drivers or pynvml."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
    except Exception:
        return []
    out = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "utilization_percent": float(util.gpu),
                    "memory_used": int(memory.used),
                    "memory_total": int(memory.total),
                }
            )
    except Exception:
        return out
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return out


def sample_resources(disk_path: str | Path | None = None, pid: int | None = None) -> dict[str, Any]:
    """One sample: CPU %, RAM, disk of ``disk_path`` (default: the tunelab home), process RSS, GPUs."""
    if disk_path is None:
        from tunelab.settings import get_settings

        disk_path = get_settings().home
    path = Path(disk_path)
    while not path.exists() and path != path.parent:
        path = path.parent
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(path))
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "ram_used": int(memory.total - memory.available),
        "ram_total": int(memory.total),
        "disk_used": int(disk.used),
        "disk_total": int(disk.total),
        "process_rss": _process_tree_rss(pid),
        "gpus": gpu_stats(),
    }


def record_sample(
    session: Session, sample: dict[str, Any], *, job_id: str | None = None, worker_id: str | None = None
) -> ResourceSample:
    """Store a sample (flushed, committed by the caller)."""
    row = ResourceSample(job_id=job_id, worker_id=worker_id, **sample)
    session.add(row)
    session.flush()
    return row


def recent_samples(
    session: Session, *, job_id: str | None = None, limit: int = 60
) -> list[ResourceSample]:
    """The latest samples, oldest first; for one job when ``job_id`` is given."""
    query = select(ResourceSample)
    if job_id is not None:
        query = query.where(ResourceSample.job_id == job_id)
    query = query.order_by(ResourceSample.id.desc()).limit(max(1, min(limit, 10_000)))
    return list(session.scalars(query))[::-1]
