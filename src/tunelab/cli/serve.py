"""`tunelab serve` (API + embedded workers) and `tunelab worker` (worker only).

``serve`` upgrades the store, refuses an unsafe bind (another address than
loopback without an API token), starts N worker threads from
``tunelab.jobs.worker`` and runs uvicorn. On Ctrl-C the workers checkpoint
their running jobs and give them back to the queue, so the next start goes on
where this one stopped. Training itself always runs in separate engine
processes, so the API never blocks on it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import typer


def _workers(count: int, settings: Any, app: Any = None) -> list[tuple[Any, threading.Thread]]:
    """Start ``count`` embedded workers on their own pool; ``app``'s /api/health then watches them."""
    from tunelab.jobs.reconcile import make_worker_id
    from tunelab.jobs.worker import Worker
    from tunelab.store.db import session_factory

    factory = session_factory(settings.resolved_database_url, role="worker", settings=settings)  # not the API's
    started = []
    for index in range(count):
        worker = Worker(factory, make_worker_id(f"serve{index}"), settings)
        thread = threading.Thread(target=worker.run_forever, name=f"tunelab-worker-{index}", daemon=True)
        thread.start()
        started.append((worker, thread))
    if app is not None:
        app.state.workers = [runner for runner, _ in started]
    return started


def sweep_driver(settings: Any, capacity: int | None) -> Any:
    """Start the sweep driver thread (``tunelab.sweeps.driver``): it turns sweeps' trials into jobs.

    Several ``tunelab serve`` processes on one PostgreSQL store may all run
    one; a lease per sweep lets only one of them work on a sweep at a time.
    ``capacity`` (the embedded workers) caps how many trials a sweep queues at once.
    """
    from tunelab.store.db import session_factory
    from tunelab.sweeps.driver import SweepDriver

    factory = session_factory(settings.resolved_database_url, role="worker", settings=settings)
    driver = SweepDriver(factory, capacity=capacity or None)
    driver.start()
    return driver


def queue_example(settings: Any, path: Path) -> str | None:
    """Queue a training config file as a job unless a job of that name already exists.

    This is how the quick start ends with a tuned model: the first start of the
    studio trains ``examples/identity-lora.yaml`` on the embedded worker, and
    later starts leave the existing job alone.
    """
    from tunelab.cli.train import load_train_config
    from tunelab.jobs import service
    from tunelab.store.db import session_factory

    train_config = load_train_config(path, [])
    data = train_config.model_dump(mode="json", exclude_unset=True)
    for key in ("name", "model", "dataset"):
        data.pop(key, None)
    name = train_config.name or path.stem
    config = {"model": train_config.model, "dataset": train_config.dataset, "hyperparameters": data}
    with session_factory(settings.resolved_database_url)() as session:
        existing, _ = service.list_jobs(session, search=name, limit=100)
        if any(job.name == name for job in existing):
            return None
        job = service.create_job(session, config, name=name, tags=["example"])
        return job.id


def serve(
    host: str = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1; others need a token)."),
    port: int = typer.Option(None, "--port", help="Port (default 8420)."),
    workers: int = typer.Option(1, "--workers", min=0, max=64, help="Embedded job workers."),
    no_worker: bool = typer.Option(False, "--no-worker", help="API only; run `tunelab worker` elsewhere."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    access_log: bool = typer.Option(
        False, "--access-log", help="Log every HTTP request (off by default: the dashboard polls, and a line "
        "per poll buries the ones that matter, such as a job that failed).",
    ),
    example: Path = typer.Option(
        None, "--example", help="Training config to queue as a job on first start (skipped if a job of its name exists)."
    ),
    training_port: int = typer.Option(
        None, "--training-port", min=1, max=65535,
        help="Also serve the same app on this port (the workflow guide's training API, e.g. 8001).",
    ),
) -> None:
    """Run the studio: REST API, live streams and job workers."""

    from tunelab.api import create_app
    from tunelab.settings import get_settings

    settings = get_settings()
    settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    app = create_app(settings)  # migrates the store and checks the bind before anything starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if example is not None:
        job_id = queue_example(settings, example)
        if job_id:
            typer.echo(f"queued {example} as {job_id}; when it completes: tunelab chat {settings.runs_dir / job_id / 'output'}")
    started = [] if no_worker else _workers(workers, settings, app)
    sweeps = sweep_driver(settings, None if no_worker else workers)
    ports = [settings.port] + ([training_port] if training_port and training_port != settings.port else [])
    typer.echo(
        f"tunelab serving on {' and '.join(f'http://{settings.host}:{p}' for p in ports)} "
        f"(docs at /docs, {len(started)} worker(s), home {settings.home})"
    )
    settle_garbage_collector()
    try:
        if len(ports) == 1:
            make_server(app, settings.host, settings.port, log_level, access_log=access_log).run()
        else:
            serve_on_ports(app, settings.host, ports, log_level, access_log=access_log)
    except KeyboardInterrupt:
        pass  # uvicorn raises the captured Ctrl-C again once it has shut down (uvicorn.run swallowed it)
    finally:
        sweeps.stop()  # trials in flight are jobs: the workers checkpoint them like any other
        stop_workers(started)


def settle_garbage_collector() -> None:
    """Move everything alive before the server starts out of the collector's sight (``gc.freeze``).

    The server holds a few hundred thousand long-lived objects (modules, the
    app, SQLAlchemy's mappers, the worker's imports); every full collection
    walked all of them, 0.1 s or more on this machine, and every read that
    arrived meanwhile waited: under load the slowest reads were these pauses.
    Only the server process does this (a test process makes hundreds of apps,
    and a frozen object is never freed); what is made later is collected as
    before.
    """
    import gc

    gc.collect()
    gc.freeze()


def serve_on_ports(app: Any, host: str, ports: list[int], log_level: str, *, access_log: bool = False) -> None:
    """One uvicorn server, one app, listening on every port (the guide's 8000 and 8001 at once).

    The sockets are bound here and handed to uvicorn, so both ports share one
    event loop, one store connection pool and one shutdown.
    """
    import socket

    sockets = []
    try:
        for port in ports:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.set_inheritable(True)
            sockets.append(sock)
    except OSError as error:
        for sock in sockets:
            sock.close()
        from tunelab.errors import TunelabError

        raise TunelabError(f"cannot listen on {host}:{port}: {error}", "choose a free port", code="port_in_use") from None
    make_server(app, host, ports[0], log_level, access_log=access_log).run(sockets=sockets)


#: Seconds open connections (SSE and WebSocket streams, a chat finishing its token) get after SIGTERM.
SHUTDOWN_GRACE_S = 3


def make_server(app: Any, host: str, port: int, log_level: str, *, access_log: bool = False) -> Any:
    """uvicorn with a bounded shutdown, so SIGTERM stops the API within seconds whatever it serves.

    On the signal every chat generation is cancelled at its next token (and
    waiting chats give up), then open connections get ``SHUTDOWN_GRACE_S``
    before uvicorn closes them; without the limit one open stream kept the
    server up forever. The embedded workers still checkpoint afterwards.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            models = getattr(app.state, "chat_models", None)
            if models is not None:
                models.cancel_all()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    return Server(config)


def stop_workers(started: list[tuple[Any, threading.Thread]]) -> None:
    """Hand running jobs back to the queue at a checkpoint, however long a step takes.

    A capped wait would let the process exit mid-step; the job would then look
    lost and burn one of its attempts. A second Ctrl-C still quits at once.
    """
    for worker, _ in started:
        worker.stop()
    busy = [worker.current_job for worker, _ in started if worker.current_job]
    if busy:
        typer.echo(
            f"stopping: checkpointing {', '.join(busy)} at the end of the current step; it resumes "
            "on the next start (Ctrl-C again to quit now: the job is then recovered as lost)"
        )
    try:
        for _, thread in started:
            thread.join()
    except KeyboardInterrupt:
        typer.echo("quit without waiting: the job is requeued from its last checkpoint on the next start")


def worker(
    worker_id: str = typer.Option(None, "--worker-id", help="Name shown on claimed jobs."),
    max_jobs: int = typer.Option(None, "--max-jobs", help="Exit after this many jobs."),
) -> None:
    """Run one job worker against the configured store (for other machines)."""
    import signal

    from tunelab.jobs.worker import Worker
    from tunelab.settings import get_settings
    from tunelab.store.db import session_factory

    settings = get_settings()
    factory = session_factory(settings.resolved_database_url, role="worker", settings=settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")  # after Alembic's chatter
    runner = Worker(factory, worker_id, settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    typer.echo(f"worker {runner.worker_id} waiting for jobs (database {settings.resolved_database_url})")
    runner.run_forever(max_jobs=max_jobs)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    names = {command.name for command in app.registered_commands}
    if "worker" not in names:  # the jobs package may register its own
        app.command("worker")(worker)
