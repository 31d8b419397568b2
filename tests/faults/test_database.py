"""The database briefly unreachable: a TCP proxy in front of PostgreSQL is closed mid-training and reopened.

Closing the proxy cuts every open connection and refuses new ones (what a
restarting database server or a dropped network link looks like to the
worker). The worker keeps retrying with backoff while the engine trains on;
after the proxy reopens the job completes on its first attempt with every
metric step stored once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.api.live import free_port
from tests.faults.helpers import (
    HOOKS,
    assert_recovered,
    assert_worker_alive,
    create_job,
    run_dir,
    wait_status,
    wait_until,
    worker_thread,
)
from tests.jobs.helpers import wait_for_job

from tunelab.store.db import init_db, session_factory

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(400)]


class Proxy:
    """A TCP forwarder on 127.0.0.1:port to (host, target_port) that a test can close and reopen."""

    def __init__(self, host: str, target_port: int) -> None:
        self.target = (host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every connection in both directions."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [*sockets, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_database_unreachable_for_a_while_then_back_the_job_completes(
    postgres_url: str, make_config, tiny_model_dir: Path, tunelab_home: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import logging

    from tunelab.store.testing import clear_tables

    monkeypatch.setenv(HOOKS, "step@6=6")  # the outage falls in the middle of training
    caplog.set_level(logging.WARNING, logger="tunelab.worker")

    init_db(postgres_url)
    clear_tables(postgres_url)
    target = make_url(postgres_url)
    proxy = Proxy(target.host or "127.0.0.1", target.port or 5432)
    url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    direct = session_factory(postgres_url)  # the test's own view, not through the proxy
    job_id = create_job(direct, make_config, tiny_model_dir, max_steps=12, save_steps=4)
    try:
        with worker_thread(tunelab_home, url=url, worker_id="proxy-worker", lease_s=20.0) as worker:
            wait_until(lambda: (run_dir(tunelab_home, job_id) / "hook-step-6").exists(), 240, "step 6")
            wait_for_job(direct, job_id, lambda j: (j.global_step or 0) >= 5, timeout=30)
            proxy.close()
            time.sleep(5.0)  # five seconds without a database: about 25 ticks fail
            assert worker.thread.is_alive()  # type: ignore[attr-defined]
            failures = [r.getMessage() for r in caplog.records if job_id in r.getMessage() and "failed" in r.getMessage()]
            assert failures, "the outage was not noticed"
            proxy.open()
            wait_status(direct, job_id, ("completed", "failed", "paused"))
            assert_worker_alive(worker)
    finally:
        proxy.close()
    job = assert_recovered(direct, job_id, status="completed", last_step=12, resumed_from=None)
    assert job.attempts == 1  # the outage cost no attempt
