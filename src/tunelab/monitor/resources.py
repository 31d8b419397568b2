"""Resource samples: CPU, RAM, disk, I/O and network rates, the training process tree, GPUs via NVML.

``sample_resources`` is cheap (no blocking CPU interval after the first call)
so the worker can take one every few seconds while a job runs, the monitor
loop (``monitor/alerts.py``) can check thresholds, and the API can answer
"current resources" on demand. Rates (disk I/O, network) are the change of
the OS counters since this process's previous sample, so the first sample has
them as ``None``. Temperatures appear where the OS reports them (Linux
``hwmon``); elsewhere they are ``None``. GPUs are read through NVML (the
``nvidia-ml-py`` package's ``pynvml``) only when it imports and initialises;
otherwise ``gpus`` is an empty list, and a reading one GPU does not support
(temperature, power) is ``None``, never an error.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.store.models import ResourceSample

# Sensor names psutil reports for the CPU package on common Linux drivers, most specific first.
CPU_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal", "acpitz")
_STORED = frozenset(c.key for c in ResourceSample.__table__.columns) - {"id", "job_id", "worker_id", "created_at"}
_counters_lock = threading.Lock()
_last_counters: dict[str, tuple[float, tuple[int, int]]] = {}


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


def _nvml_optional(read: Any, *args: Any) -> Any:
    """One NVML reading, or None where this GPU or driver does not support it."""
    try:
        return read(*args)
    except Exception:
        return None


def gpu_stats() -> list[dict[str, Any]]:
    """Per-GPU utilisation, memory, temperature and power through NVML; [] without NVIDIA drivers or pynvml."""
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
            temperature = _nvml_optional(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
            power_mw = _nvml_optional(pynvml.nvmlDeviceGetPowerUsage, handle)
            limit_mw = _nvml_optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            out.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "utilization_percent": float(util.gpu),
                    "memory_used": int(memory.used),
                    "memory_total": int(memory.total),
                    "memory_percent": round(100.0 * memory.used / memory.total, 2) if memory.total else None,
                    "temperature_c": None if temperature is None else float(temperature),
                    "power_w": None if power_mw is None else round(power_mw / 1000.0, 2),
                    "power_limit_w": None if limit_mw is None else round(limit_mw / 1000.0, 2),
                }
            )
    except Exception:
        return out
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return out


def cpu_temperature() -> float | None:
    """The CPU package temperature in °C where the OS reports one (hottest sensor of the CPU driver)."""
    read = getattr(psutil, "sensors_temperatures", None)  # absent on Windows and macOS
    if read is None:
        return None
    try:
        sensors = read()
    except Exception:
        return None
    for name in CPU_SENSORS:
        values = [entry.current for entry in sensors.get(name, []) if entry.current is not None]
        if values:
            return float(max(values))
    return None


def _rate(key: str, counters: tuple[int, int] | None) -> tuple[float | None, float | None]:
    """Bytes per second of two cumulative counters since this process last read them."""
    if counters is None:
        return None, None
    now = time.monotonic()
    with _counters_lock:
        previous = _last_counters.get(key)
        _last_counters[key] = (now, counters)
    if previous is None or now - previous[0] <= 0:
        return None, None
    elapsed = now - previous[0]
    first, second = (max(0, a - b) / elapsed for a, b in zip(counters, previous[1], strict=True))
    return round(first, 1), round(second, 1)


_cpu_lock = threading.Lock()
_last_cpu: list[tuple[float, float]] = []  # (busy, total) CPU seconds at this process's previous sample


def cpu_percent(_retry: bool = True) -> float:
    """System CPU use since this process's previous sample, from any thread.

    psutil's ``cpu_percent(interval=None)`` remembers the previous call per
    thread, so its first call in each new API or worker thread says 0.0;
    keeping one process-wide reading here gives every caller the real value.
    The very first sample measures over 0.1 s instead.
    """
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    with _cpu_lock:
        previous = _last_cpu[0] if _last_cpu else None
        _last_cpu[:] = [(total - idle, total)]
    if previous is None or total - previous[1] <= 0:
        if not _retry:
            return 0.0
        time.sleep(0.1)
        return cpu_percent(_retry=False)
    busy = (total - idle) - previous[0]
    return round(max(0.0, min(100.0, 100.0 * busy / (total - previous[1]))), 1)


def _disk_counters() -> tuple[int, int] | None:
    try:
        io = psutil.disk_io_counters()
    except Exception:
        return None
    return None if io is None else (int(io.read_bytes), int(io.write_bytes))


def _net_counters() -> tuple[int, int] | None:
    try:
        io = psutil.net_io_counters()
    except Exception:
        return None
    return None if io is None else (int(io.bytes_sent), int(io.bytes_recv))


def sample_resources(disk_path: str | Path | None = None, pid: int | None = None) -> dict[str, Any]:
    """One sample: CPU %, cores, temperature, RAM, disk of ``disk_path`` (default: the tunelab home),
    disk and network rates, process RSS, GPUs."""
    if disk_path is None:
        from tunelab.settings import get_settings

        disk_path = get_settings().home
    path = Path(disk_path)
    while not path.exists() and path != path.parent:
        path = path.parent
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(path))
    disk_read, disk_write = _rate("disk", _disk_counters())
    net_sent, net_recv = _rate("net", _net_counters())
    ram_used = int(memory.total - memory.available)
    return {
        "cpu_percent": cpu_percent(),
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_temperature": cpu_temperature(),
        "ram_used": ram_used,
        "ram_total": int(memory.total),
        "ram_percent": round(100.0 * ram_used / memory.total, 2) if memory.total else None,
        "disk_used": int(disk.used),
        "disk_total": int(disk.total),
        "disk_percent": round(100.0 * disk.used / disk.total, 2) if disk.total else None,
        "disk_read_bytes_per_s": disk_read,
        "disk_write_bytes_per_s": disk_write,
        "net_sent_bytes_per_s": net_sent,
        "net_recv_bytes_per_s": net_recv,
        "process_rss": _process_tree_rss(pid),
        "gpus": gpu_stats(),
    }


def record_sample(
    session: Session, sample: dict[str, Any], *, job_id: str | None = None, worker_id: str | None = None
) -> ResourceSample:
    """Store a sample's table columns (flushed, committed by the caller); the rest stays in the live answer
    and in the job's ``resources`` events."""
    row = ResourceSample(job_id=job_id, worker_id=worker_id, **{k: v for k, v in sample.items() if k in _STORED})
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
