"""Polled reads are answered once for everybody (``api/shared_reads.py``), and nobody reads an answer older than a commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tunelab.api import create_app
from tunelab.api.shared_reads import SharedReads
from tunelab.settings import Settings


def test_concurrent_identical_reads_run_once_and_a_new_generation_runs_again() -> None:
    calls: list[str] = []

    async def main() -> None:
        reads = SharedReads()
        gate = asyncio.Event()

        async def compute(key: str) -> bytes:
            calls.append(key)
            await gate.wait()
            return key.encode()

        waiters = [asyncio.create_task(reads.answer(key, lambda key=key: compute(key))) for key in ["a"] * 5 + ["b"]]
        await asyncio.sleep(0)
        assert reads.in_flight == 2
        reads.new_generation()  # a write answered meanwhile: the next read of "a" must not join the old flight
        late = asyncio.create_task(reads.answer("a", lambda: compute("a")))
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiters) == [b"a"] * 5 + [b"b"]
        assert await late == b"a"
        assert reads.in_flight == 0
        assert await reads.answer("a", lambda: compute("a")) == b"a"  # kept: answered after the write

    asyncio.run(main())
    assert calls == ["a", "b", "a"]  # the first flights ran across the write, so they were not kept


def test_an_answer_is_kept_until_anything_commits_or_it_is_too_old(tmp_path: Any) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from tunelab.api.shared_reads import watch_commits

    watch_commits()
    watch_commits()  # once per process, however many apps are made
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    calls: list[int] = []

    async def compute() -> bytes:
        calls.append(1)
        return str(len(calls)).encode()

    async def main() -> None:
        reads = SharedReads(keep_s=0.2)
        assert await reads.answer("k", compute) == b"1"
        assert await reads.answer("k", compute) == b"1"  # kept
        with Session(engine) as session:  # e.g. the embedded worker storing a step's metrics
            session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            session.commit()
        assert await reads.answer("k", compute) == b"2"  # a commit in this process: asked again
        assert await reads.answer("k", compute) == b"2"
        await asyncio.sleep(0.25)  # older than keep_s: another process may have written since
        assert await reads.answer("k", compute) == b"3"
        with Session(engine) as session:  # a session that commits nothing changes nothing
            session.execute(text("SELECT 1"))
        assert await reads.answer("k", compute) == b"3"

        never = SharedReads(keep_s=0)  # TUNELAB_READ_CACHE_S=0
        assert await never.answer("k", compute) == b"4"
        assert await never.answer("k", compute) == b"5"

    asyncio.run(main())
    engine.dispose()


def test_an_error_reaches_every_waiter_and_a_leaving_client_cancels_nothing() -> None:
    async def main() -> None:
        reads = SharedReads()
        gate = asyncio.Event()

        async def failing() -> bytes:
            await gate.wait()
            raise LookupError("no such job")

        waiters = [asyncio.create_task(reads.answer("x", failing)) for _ in range(3)]
        await asyncio.sleep(0)
        waiters[0].cancel()  # its client left: the other two still get the answer
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert all(isinstance(result, LookupError) for result in results[1:])

        async def ok() -> bytes:
            return b"fine"

        assert await reads.answer("x", ok) == b"fine"  # the failed flight is forgotten

    asyncio.run(main())


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of ``tunelab.jobs.service.<name>`` (still the real function) and slow it a little."""
    import time

    from tunelab.jobs import service

    real: Callable[..., Any] = getattr(service, name)
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.05)  # a store under load: the other requests arrive while this one is answered
        return real(*args, **kwargs)

    monkeypatch.setattr(service, name, counted)
    return calls


def test_a_burst_of_polls_makes_few_queries_with_the_answers_fastapi_gave(
    settings: Settings, make_job: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = make_job("running")
    app = create_app(settings)

    async def burst(path: str, count: int) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
            return list(await asyncio.gather(*(client.get(path) for _ in range(count))))

    single = {path: asyncio.run(burst(path, 1))[0] for path in ("/api/jobs", f"/api/jobs/{job_id}")}
    calls = {"list_jobs": _spy(monkeypatch, "list_jobs"), "get_job": _spy(monkeypatch, "get_job"),
             "list_metrics": _spy(monkeypatch, "list_metrics")}  # fmt: skip
    for path, name in (("/api/jobs", "list_jobs"), (f"/api/jobs/{job_id}", "get_job"),
                       (f"/api/jobs/{job_id}/metrics?last_n=50", "list_metrics")):  # fmt: skip
        answers = asyncio.run(burst(path, 30))
        assert {answer.status_code for answer in answers} == {200}
        assert len({answer.content for answer in answers}) == 1
        assert answers[0].headers["content-type"] == "application/json"
        assert len(calls[name]) < 10, (path, len(calls[name]))  # 30 without sharing
        if path in single:  # the same answer as one request alone, in the same shape
            assert answers[0].json() == single[path].json()
    assert single["/api/jobs"].json()["data"][0]["id"] == job_id

    missing = asyncio.run(burst("/api/jobs/job-missing", 5))
    assert {answer.status_code for answer in missing} == {404}
    assert all(json.loads(answer.content)["error"]["code"] for answer in missing)


def test_a_client_reads_its_own_writes(settings: Settings, chat_file: Any) -> None:
    app = create_app(settings)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
            config = {"model": "tiny-model", "dataset": str(chat_file), "hyperparameters": {"max_steps": 2}}
            seen = []
            for index in range(3):
                reads = [asyncio.create_task(client.get("/api/jobs")) for _ in range(5)]
                created = await client.post("/api/jobs", json={"configuration": config, "name": f"j{index}",
                                                               "submit": False})  # fmt: skip
                assert created.status_code == 201, created.text
                after = await client.get("/api/jobs")  # sent after the write's answer: must see it
                seen.append(after.json()["count"])
                assert created.json()["id"] in {job["id"] for job in after.json()["data"]}
                await asyncio.gather(*reads)
            assert seen == [1, 2, 3]

    asyncio.run(main())


def test_on_sqlite_another_process_commit_is_seen_at_once_and_otherwise_answers_stay(tmp_path: Any) -> None:
    import sqlite3
    import subprocess
    import sys

    from tunelab.api.shared_reads import StoreVersion

    path = tmp_path / "store.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x INTEGER)")
    version = StoreVersion(f"sqlite:///{path}")
    assert version.exact and StoreVersion("postgresql+psycopg://u@h/db").current() is None
    calls: list[int] = []

    async def compute() -> bytes:
        calls.append(1)
        return str(len(calls)).encode()

    async def main() -> None:
        reads = SharedReads(keep_s=0.05, version=version)
        assert await reads.answer("k", compute) == b"1"
        await asyncio.sleep(0.1)  # older than keep_s, but nothing committed: still current on SQLite
        assert await reads.answer("k", compute) == b"1"
        writer = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('INSERT INTO t VALUES (1)'); db.commit()"
        subprocess.run([sys.executable, "-c", writer, str(path)], check=True)  # a standalone worker's commit
        assert await reads.answer("k", compute) == b"2"

    asyncio.run(main())
    version.close()


def test_distinct_reads_keep_at_most_max_kept_answers() -> None:
    async def main() -> None:
        reads = SharedReads(keep_s=60, max_kept=3)

        async def compute(key: str) -> bytes:
            return key.encode()

        for index in range(10):  # ten different searches, nothing committed meanwhile
            await reads.answer(f"search-{index}", lambda index=index: compute(f"search-{index}"))
        assert len(reads._kept) == 3
        assert [slot[-1] for slot in reads._kept] == ["search-7", "search-8", "search-9"]  # the newest stay

    asyncio.run(main())
