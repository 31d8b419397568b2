"""The system page lists the workers in a real browser: resources, state, the job each runs and its lease."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.web.browser import studio

from tunelab.settings import Settings

expect = pytest.importorskip("playwright.sync_api").expect


def test_system_page_lists_workers_with_resources_and_jobs(
    settings: Settings, page: Any, tmp_path: Path
) -> None:
    from tunelab.jobs.queue import claim_next_job
    from tunelab.jobs.resources import GIB, Resources, advertise, retire
    from tunelab.jobs.service import create_job
    from tunelab.store.db import session_factory

    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"}) + "\n")
    factory = session_factory(settings.resolved_database_url)
    cpu = Resources(cpu_count=4, ram_total=16 * GIB)
    gpu = Resources(gpus=[{"index": 0, "name": "NVIDIA H100", "memory_total": 80 * GIB}], cpu_count=32,
                    ram_total=256 * GIB)  # fmt: skip
    with factory() as session:
        job = create_job(session, {"model": "tiny", "dataset": str(data)}, name="numbers-run")
    claimed = claim_next_job(factory, "cpu-box:101", lease_s=60, resources=cpu)
    assert claimed is not None and claimed.id == job.id
    with factory() as session:
        advertise(session, "cpu-box:101", cpu, job.id)
        advertise(session, "gpu-box:202", gpu, None)
        retire(session, "gpu-box:202")

    with studio(settings) as url:
        page.goto(f"{url}/ui/#/system")
        workers = page.get_by_role("table", name="Workers")
        live = workers.get_by_role("row").filter(has_text="cpu-box:101")
        expect(live).to_contain_text("live")
        expect(live).to_contain_text("none")  # no GPU
        expect(live).to_contain_text("16 GB")
        expect(live.get_by_role("link", name="numbers-run")).to_have_attribute(
            "href", f"#/jobs/{job.id}"
        )
        expect(live).to_contain_text("lease until")
        stopped = workers.get_by_role("row").filter(has_text="gpu-box:202")
        expect(stopped).to_contain_text("stopped")
        expect(stopped).to_contain_text("NVIDIA H100 (80 GB)")
        expect(stopped).to_contain_text("idle")


def test_job_page_says_what_a_queued_job_waits_for(settings: Settings, page: Any, tmp_path: Path) -> None:
    from tunelab.jobs.resources import GIB, Resources, advertise, report_waiting
    from tunelab.jobs.service import create_job
    from tunelab.store.db import session_factory

    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"}) + "\n")
    factory = session_factory(settings.resolved_database_url)
    with factory() as session:
        job = create_job(session, {"model": "tiny", "dataset": str(data), "hyperparameters": {"device": "cuda"}},
                         name="gpu-run")
        advertise(session, "cpu-box:101", Resources(cpu_count=4, ram_total=16 * GIB), None)
    with factory() as session:
        assert report_waiting(session, stale_s=60) == [(job.id, "waiting for resources: needs 1 GPU; workers have none")]

    with studio(settings) as url:
        page.goto(f"{url}/ui/#/jobs/{job.id}")
        expect(page.locator(".wait-reason")).to_have_text("Queued, waiting for resources: needs 1 GPU; workers have none.")
