"""API under load while a job trains: read latency, errors, and what the load costs training.

Run:  python benchmarks/api_load.py [--clients 100] [--streams 50] [--seconds 60]

One run starts a studio (`tunelab serve`, one embedded worker) on a fresh home,
uploads the shipped identity dataset and starts one long LoRA job on the
built-in SmolLM2-135M-Instruct. While that job trains, four windows of
``--seconds`` each are measured in the order A B B A, so a drift of the
machine over time (other work, thermal) falls on both arms alike:

* ``A`` (no load): nothing but the job.
* ``B`` (load): a fresh subprocess runs ``--clients`` concurrent clients, each
  reading ``GET /api/jobs`` and ``GET /api/jobs/{id}/metrics?last_n=50`` in
  turn, one read every ``--pace`` seconds (default 1; an open dashboard polls
  the job list every 3 s and a job every 5 s; ``--pace 0`` sends the next read
  as soon as the last is answered, which measures how many reads the server
  can answer, not how a studio is used), plus ``--streams`` SSE streams
  (``GET /api/jobs/{id}/stream``) held open and read.

Per window: requests, errors (any non-200, refused connection or broken
stream), read latency p50/p95/p99, stream events received, the job's
training tokens/s over the steps that ended in the window (real tokens over
step time, from the engine's own per-step figures), and the machine's 1-minute
load average at the window's end (``/proc/loadavg``: on a shared machine it
says how much else was running), and the CPU the studio's server process,
the training engine and the load subprocess used in the window, in percent of
one core (who took the cores; clients of a real studio run elsewhere). The last lines compare B with A and check
the targets: zero errors, read p99 under 200 ms, training tokens/s within 10%
of no load. ``--engine-nice N`` starts the studio with ``TUNELAB_ENGINE_NICE=N``
(the engine's CPU priority; see docs/service.md for the trade).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "examples" / "data" / "identity.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# -- the load arm (its own subprocess) ------------------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection of a reader: a GET, then the answer read by its Content-Length.

    The readers use this rather than httpx because the load subprocess runs on
    the same cores as the server and the training, and httpx's CPU per request
    was then a part of what "the load" cost them; a real studio's clients run
    elsewhere. The SSE streams, which are few and slow, keep httpx.
    """

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, timeout: float = 30) -> int:
        """The status of ``GET path`` (the body is read and dropped); any failure closes the connection."""
        try:
            async with asyncio.timeout(timeout):
                if self.reader is None or self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
                head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
                length = head.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0]
                await self.reader.readexactly(int(length))
                if b"\r\nconnection: close" in head:
                    self.close()
                return int(head.split(b" ", 2)[1])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _reader(base: str, job_id: str, stop: float, pace: float, out: dict[str, Any]) -> None:
    """One client: the job list and the job's metrics in turn, a request every ``pace`` s (0: no pause)."""
    import random

    paths = ("/api/jobs", f"/api/jobs/{job_id}/metrics?last_n=50")
    connection = _Connection(base)
    turn = 0
    if pace:  # clients that opened their pages at different moments, not all in the same millisecond
        await asyncio.sleep(random.uniform(0, pace))
    while time.monotonic() < stop:
        path = paths[turn % 2]
        turn += 1
        started = time.perf_counter()
        try:
            status = await connection.get(path)
            ok = status == 200
            if not ok:
                out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
        except Exception as error:  # refused, reset, timed out: all count as errors
            ok = False
            out["statuses"][type(error).__name__] = out["statuses"].get(type(error).__name__, 0) + 1
        out["latencies"].append(time.perf_counter() - started)
        out["requests"] += 1
        out["errors"] += 0 if ok else 1
        if pace:
            await asyncio.sleep(max(0.0, pace - (time.perf_counter() - started)))
    connection.close()


async def _stream(client: Any, base: str, job_id: str, stop: float, out: dict[str, Any]) -> None:
    try:
        async with client.stream("GET", f"{base}/api/jobs/{job_id}/stream", timeout=None) as response:
            if response.status_code != 200:
                out["stream_errors"] += 1
                return
            out["streams_open"] += 1
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    out["stream_events"] += 1
                if time.monotonic() >= stop:
                    return
    except Exception:
        if time.monotonic() < stop:
            out["stream_errors"] += 1


async def _load(base: str, job_id: str, clients: int, streams: int, seconds: float, pace: float) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {"requests": 0, "errors": 0, "latencies": [], "statuses": {}, "streams_open": 0,
                           "stream_events": 0, "stream_errors": 0}  # fmt: skip
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        stop = time.monotonic() + seconds
        tasks = [_stream(client, base, job_id, stop, out) for _ in range(streams)]
        tasks += [_reader(base, job_id, stop, pace, out) for _ in range(clients)]
        await asyncio.gather(*tasks)
    return out


def load_arm(base: str, job_id: str, clients: int, streams: int, seconds: float, pace: float) -> None:
    """Entry point of the load subprocess: prints one JSON line with what it saw."""
    try:
        import uvloop  # uvicorn[standard] brings it: the cheaper event loop, as the server's

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    out = run(_load(base, job_id, clients, streams, seconds, pace))
    latencies = sorted(out.pop("latencies"))

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))] * 1000 if latencies else 0.0

    out.update(p50_ms=pct(0.50), p95_ms=pct(0.95), p99_ms=pct(0.99), max_ms=pct(1.0))
    print(json.dumps(out))


# -- the driver -----------------------------------------------------------------------------------


def _start_studio(home: Path, port: int, model: str, engine_nice: int | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TUNELAB_HOME": str(home), "TUNELAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    if engine_nice is not None:
        env["TUNELAB_ENGINE_NICE"] = str(engine_nice)
    if Path(model).is_dir():  # a local model folder (the tests' tiny model): the local admin may name it
        env["TUNELAB_ALLOW_SERVER_PATHS"] = json.dumps([str(Path(model).resolve().parent)])
    log = (home / "serve.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tunelab", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], home: Path) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            _get(f"{base}/api/health", timeout=5)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the studio did not start:\n" + (home / "serve.log").read_text()[-3000:]) from None
            time.sleep(0.5)


def _start_job(base: str, batch_size: int, model: str) -> str:
    import httpx

    with httpx.Client(base_url=base, timeout=60) as client:
        with DATASET.open("rb") as fh:
            uploaded = client.post("/api/datasets", files={"file": (DATASET.name, fh)}, data={"name": "identity"})
        uploaded.raise_for_status()
        hyperparameters = {"max_steps": 100000, "batch_size": batch_size, "max_length": 256, "save_steps": 0,
                           "eval_steps": 0, "logging_steps": 1, "output": {"evaluate": False}}  # fmt: skip
        model = str(Path(model).resolve()) if Path(model).is_dir() else model
        body = {"configuration": {"model": model, "dataset": uploaded.json()["version"]["id"],
                                  "hyperparameters": hyperparameters}, "name": "load-benchmark"}  # fmt: skip
        created = client.post("/api/jobs", json=body)
        if created.status_code != 201:
            raise SystemExit(f"could not create the job: {created.status_code} {created.text}")
        return str(created.json()["id"])


def _steps(base: str, job_id: str) -> dict[int, dict[str, Any]]:
    rows = _get(f"{base}/api/jobs/{job_id}/metrics?last_n=100000")["data"]
    return {int(row["step"]): row for row in rows if row.get("tokens_per_second")}


def _train_rate(before: dict[int, Any], after: dict[int, Any]) -> tuple[int, float, float]:
    """(steps, tokens, step seconds) of the steps that ended in the window (real tokens over step time)."""
    new = [after[s] for s in sorted(set(after) - set(before))]
    tokens, seconds = 0.0, 0.0
    for row in new:
        count = (row.get("data") or {}).get("tokens") or row.get("tokens")
        rate = row["tokens_per_second"]
        if not count:  # per-step tokens from the running total
            seen = (row.get("data") or {}).get("tokens_seen")
            previous = (after.get(int(row["step"]) - 1) or {}).get("data", {}).get("tokens_seen")
            count = seen - previous if seen is not None and previous is not None else None
        if count:
            tokens += float(count)
            seconds += float(count) / float(rate)
    return len(new), tokens, seconds


def _loadavg() -> float:
    """The machine's 1-minute load average (0 where /proc/loadavg does not exist)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used; 0 when it is gone."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times() if pid else None
    except psutil.Error:
        return 0.0
    return times.user + times.system if times else 0.0


def _window(arm: str, base: str, job_id: str, args: argparse.Namespace) -> dict[str, Any]:
    import resource

    before = _steps(base, job_id)
    engine = _get(f"{base}/api/jobs/{job_id}").get("pid")
    cpu = {"server": _cpu_s(args.server_pid), "engine": _cpu_s(engine)}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    row: dict[str, Any] = {"arm": arm}
    if arm == "B":
        done = subprocess.run([sys.executable, __file__, "--load-arm", base, job_id, "--clients", str(args.clients),
                               "--streams", str(args.streams), "--seconds", str(args.seconds),
                               "--pace", str(args.pace)],
                              capture_output=True, text=True, timeout=args.seconds + 300)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"the load subprocess failed:\n{done.stderr[-3000:]}")
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    else:
        time.sleep(args.seconds)
    row["wall_s"] = time.monotonic() - started
    row["loadavg"] = _loadavg()
    done_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = done_children.ru_utime + done_children.ru_stime - children.ru_utime - children.ru_stime
    for name, used in (("server", _cpu_s(args.server_pid) - cpu["server"]), ("engine", _cpu_s(engine) - cpu["engine"]),
                       ("client", client)):  # fmt: skip
        row[f"{name}_cpu"] = 100.0 * used / row["wall_s"]  # percent of one core
    row["steps"], row["tokens"], row["step_s"] = _train_rate(before, _steps(base, job_id))
    row["train_tok_s"] = row["tokens"] / row["step_s"] if row["step_s"] else 0.0
    return row


def _cpu(row: dict[str, Any]) -> str:
    return f"{row['server_cpu']:>9.0f}{row['engine_cpu']:>5.0f}{row['client_cpu']:>5.0f}"


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    header = (f"{'window':<8}{'arm':<6}{'requests':>9}{'errors':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
              f"{'streams':>8}{'events':>8}{'steps':>6}{'train tok/s':>12}{'loadavg':>8}"
              f"{'cpu% srv':>9}{'eng':>5}{'cli':>5}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for index, row in enumerate(rows, 1):
        if row["arm"] == "B":
            errors = row["errors"] + row["stream_errors"]
            print(f"{index:<8}{'load':<6}{row['requests']:>9}{errors:>7}{row['p50_ms']:>8.1f}{row['p95_ms']:>8.1f}"
                  f"{row['p99_ms']:>8.1f}{row['streams_open']:>8}{row['stream_events']:>8}{row['steps']:>6}"
                  f"{row['train_tok_s']:>12.1f}{row['loadavg']:>8.1f}{_cpu(row)}")  # fmt: skip
        else:
            print(f"{index:<8}{'idle':<6}{'-':>9}{'-':>7}{'-':>8}{'-':>8}{'-':>8}{'-':>8}{'-':>8}{row['steps']:>6}"
                  f"{row['train_tok_s']:>12.1f}{row['loadavg']:>8.1f}{_cpu(row)}")  # fmt: skip
    load = [r for r in rows if r["arm"] == "B"]

    def pooled(arm: str) -> float:  # both windows of an arm together: a window may hold no step at all
        seconds = sum(r["step_s"] for r in rows if r["arm"] == arm)
        return sum(r["tokens"] for r in rows if r["arm"] == arm) / seconds if seconds else 0.0

    ratio = pooled("B") / pooled("A") if pooled("A") else 0.0
    errors = sum(r["errors"] + r["stream_errors"] for r in load)
    p99 = max(r["p99_ms"] for r in load)
    statuses: dict[str, int] = {}
    for r in load:
        for key, count in r["statuses"].items():
            statuses[key] = statuses.get(key, 0) + count
    paced = f"a read every {args.pace:g} s each" if args.pace else "no pause between reads"
    print(f"load: {args.clients} clients ({paced}) + {args.streams} SSE streams, {args.seconds:.0f} s per window; "
          f"errors {errors}{f' {statuses}' if statuses else ''}; worst read p99 {p99:.1f} ms; "
          f"training {pooled('B'):.1f} tok/s under load vs {pooled('A'):.1f} without ({ratio:.2f}x; "
          f"{sum(r['steps'] for r in rows)} steps in all)")
    few = min(sum(r["steps"] for r in rows if r["arm"] == arm) for arm in "AB") < 3
    training = "too few steps to tell" if few else ("met" if ratio >= 0.9 else "MISSED")
    print(f"targets: zero errors {'met' if errors == 0 else 'MISSED'}; read p99 < 200 ms "
          f"{'met' if p99 < 200 else 'MISSED'}; training within 10% {training}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pace", type=float, default=1.0,
                        help="Seconds between one client's reads (default 1: three to five times as often as "
                        "an open dashboard polls); 0: no pause, each client sends its next read at once.")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup-steps", type=int, default=3, help="Steps the job trains before the first window.")
    parser.add_argument("--models-from", type=Path, default=None,
                        help="A tunelab home whose converted built-in model to reuse (skips the GGUF conversion).")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Model the job trains (default: built-in).")
    parser.add_argument("--engine-nice", type=int, default=None,
                        help="TUNELAB_ENGINE_NICE for the studio (the training engine's nice value).")
    parser.add_argument("--load-arm", nargs=2, metavar=("URL", "JOB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_arm:
        load_arm(args.load_arm[0], args.load_arm[1], args.clients, args.streams, args.seconds, args.pace)
        return
    home = Path(tempfile.mkdtemp(prefix="tunelab-load-"))
    if args.models_from and (args.models_from / "models").is_dir():
        (home / "models").symlink_to((args.models_from / "models").resolve(), target_is_directory=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_studio(home, port, args.model, args.engine_nice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the studio (finally) when stopped
    try:
        _wait_healthy(base, proc, home)
        job_id = _start_job(base, args.batch_size, args.model)
        args.server_pid = proc.pid
        deadline = time.monotonic() + 900
        while len(_steps(base, job_id)) < args.warmup_steps:
            status = _get(f"{base}/api/jobs/{job_id}")["status"]
            if status in ("failed", "cancelled", "completed") or time.monotonic() > deadline:
                raise SystemExit(f"the job did not start training ({status}); see {home}/runs/{job_id}/train.log")
            time.sleep(2)
        rows = [_window(arm, base, job_id, args) for arm in ("A", "B", "B", "A")]
        _print_table(rows, args)
        nice = "default" if args.engine_nice is None else args.engine_nice
        print(f"(job {job_id}; home {home}; cpu count {os.cpu_count()}; engine nice {nice})")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
