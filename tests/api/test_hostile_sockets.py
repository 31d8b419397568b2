"""Hostile input from "Why" that the other hostile-input tests do not cover: many sockets that come and go.

Fifty WebSocket clients connect to a running job's stream and leave. Before
the fix the server kept a polling loop per departed client: it burned CPU and
SIGTERM hung. Here a real `tunelab serve` (its own process, so its CPU time and
its exit can be measured) must go quiet after they left, keep answering, write
nothing outside its home, and stop within seconds of SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

CLIENTS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _come_and_go(url: str, job_id: str) -> list[str]:
    from websockets.asyncio.client import connect

    async def one() -> str:
        async with connect(f"{url}/ws/jobs/{job_id}") as ws:
            return str(json.loads(await asyncio.wait_for(ws.recv(), timeout=60))["type"])

    return await asyncio.gather(*(one() for _ in range(CLIENTS)))


@pytest.mark.timeout(300)
def test_fifty_websocket_clients_leave_and_the_server_goes_quiet_and_stops_on_sigterm(
    tunelab_home: Path, make_job: Callable[[str], str], tmp_path: Path
) -> None:
    job_id = make_job("running")
    port = _free_port()
    outside = set(tmp_path.parent.iterdir())
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tunelab.cli.main import run; run()", "serve", "--no-worker", "--port", str(port)],
        env={**os.environ, "TUNELAB_MONITOR_INTERVAL_S": "0", "TUNELAB_OFFLINE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        kinds = asyncio.run(_come_and_go(f"ws://127.0.0.1:{port}", job_id))
        assert kinds == ["status"] * CLIENTS  # each got the job's history before leaving

        server = psutil.Process(proc.pid)
        time.sleep(2)  # let the departed sockets' loops notice and end
        before = sum(server.cpu_times()[:2])
        time.sleep(5)
        busy = sum(server.cpu_times()[:2]) - before
        assert busy < 1.0, f"the server used {busy:.2f} s of CPU in 5 s with no client connected"
        listed = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs", timeout=10).read())
        assert listed["data"][0]["id"] == job_id
    finally:
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - stopped < 15, out[-2000:]
    assert "Traceback" not in out, out[-6000:]
    assert set(tmp_path.parent.iterdir()) == outside  # nothing written next to the test's folder
