"""Real HTTP servers for tests: uvicorn in a thread, or ``tunelab serve`` / a worker as processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {url} did not become healthy")


@contextmanager
def thread_server(app: object) -> Iterator[str]:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def env_for(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return os.environ | {"TUNELAB_HOME": str(home), "HF_HUB_OFFLINE": "1", "TUNELAB_OFFLINE": "1"} | (extra or {})


def start_api(home: Path, port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``tunelab serve --no-worker`` as a process (so a test can kill and restart it); ``env`` adds variables."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--no-worker", "--port", str(port), "--log-level", "warning"],
            env=env_for(home, env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_healthy(f"http://127.0.0.1:{port}")
    return process


def start_worker(home: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tunelab.jobs.worker", "--tick-s", "0.3"],
            env=env_for(home, env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
