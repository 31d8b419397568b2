"""Engines, sessions and schema upgrades for the store.

One cached engine per database URL and role (``get_engine``: the API and the
worker each get their own pool, ``pool_config``); SQLite gets WAL, a busy
timeout and foreign keys on every connection so several threads and processes
(API, workers) can share one file. The schema is created and upgraded by the
Alembic migrations packaged in ``tunelab.store.migrations`` (``init_db`` runs
``upgrade head`` once per URL per process), never by ``create_all``.

SQLite transactions are begun by us rather than by the driver, so the queue
claim can ask for ``BEGIN IMMEDIATE`` (``immediate_session``): a write lock
taken before the read, which makes the claim a compare-and-swap.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import DatabaseUnavailable, HomeUnwritable
from tunelab.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_upgraded: set[str] = set()
_upgrade_lock = threading.Lock()


def default_url() -> str:
    return get_settings().resolved_database_url


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = url_or_engine if isinstance(url_or_engine, str) else str(url_or_engine.url)
    return url.startswith("sqlite")


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


@dataclass(frozen=True)
class PoolConfig:
    """Connection-pool limits of one engine: kept open, extra under load, longest wait for one."""

    size: int
    overflow: int
    timeout_s: float


#: The roles that get their own engine and pool (see ``pool_config``).
ROLES = ("default", "api", "worker")


def pool_config(role: str = "default", settings: Settings | None = None) -> PoolConfig | None:
    """The pool limits of ``role`` from ``settings``; None (SQLAlchemy's own) for ``default``.

    The API and the worker get separate engines, so requests that exhaust the
    API's pool wait (briefly, then 503) while the worker keeps its connections.
    """
    if role not in ROLES:
        raise ValueError(f"unknown engine role {role!r}; expected one of {ROLES}")
    if role == "default":
        return None
    settings = settings or get_settings()
    if role == "api":
        return PoolConfig(settings.api_pool_size, settings.api_pool_overflow, settings.api_pool_timeout_s)
    return PoolConfig(settings.worker_pool_size, settings.worker_pool_overflow, settings.worker_pool_timeout_s)


def get_engine(url: str | None = None, role: str = "default", settings: Settings | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the settings' database URL) and ``role``.

    One engine per (URL, pool limits): ``tunelab serve`` holds an ``api`` and a
    ``worker`` engine on the same database, each with its own pool.
    """
    return _engine(url or default_url(), pool_config(role, settings))


def dispose_engines(url: str) -> None:
    """Close every pooled connection to ``url``, whatever role opened it (before a DROP DATABASE)."""
    for (engine_url, _pool), engine in list(_ENGINES.items()):
        if engine_url == url:
            engine.dispose()


_ENGINES: OrderedDict[tuple[str, PoolConfig | None], Engine] = OrderedDict()
_ENGINES_LOCK = threading.Lock()
_MAX_ENGINES = 64  # a test session opens hundreds of throw-away databases; keep the recent ones


def _engine(url: str, pool: PoolConfig | None) -> Engine:
    with _ENGINES_LOCK:
        key = (url, pool)
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _create(url, pool)
            while len(_ENGINES) > _MAX_ENGINES:
                _ENGINES.popitem(last=False)
        _ENGINES.move_to_end(key)
        return engine


def _pool_args(pool: PoolConfig | None, *, size: int, overflow: int) -> dict[str, Any]:
    if pool is None:
        return {"pool_size": size, "max_overflow": overflow}
    return {"pool_size": pool.size, "max_overflow": pool.overflow, "pool_timeout": pool.timeout_s}


def _sqlite_pool_args(pool: PoolConfig | None) -> dict[str, Any]:
    args = _pool_args(pool, size=5, overflow=10)
    return {**args, "pool_size": args["pool_size"] + args["max_overflow"], "max_overflow": 0}


def _create(url: str, pool: PoolConfig | None) -> Engine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        on_disk = bool(path) and path != ":memory:" and "mode=memory" not in path
        if on_disk:
            _sqlite_folder(Path(path))
        # On disk, every connection the limits allow is kept once opened (size + overflow; the same total):
        # one costs a file handle, while opening one (its PRAGMAs) cost more than the query it served, and
        # under API load the overflow was opened and closed again all the time. No pre-ping: no server can
        # drop a connection to a file, and the ping was a statement per checkout.
        extra = _sqlite_pool_args(pool) if on_disk else {}  # memory: one connection per thread
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **extra)
        _sqlite_hooks(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, **_pool_args(pool, size=10, overflow=20))
    except (ArgumentError, ImportError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"TUNELAB_DATABASE_URL is not a database URL tunelab can use: {exc}",
            hint=_URL_HINT,
        ) from exc


_URL_HINT = (
    "use sqlite:///PATH/tunelab.db or postgresql://USER@HOST:PORT/DB, "
    "or unset TUNELAB_DATABASE_URL for the embedded SQLite file in the home"
)


def _sqlite_folder(path: Path) -> None:
    """Create the database folder inside the tunelab home only; elsewhere it must exist.

    A typo in a database URL should not silently create folders anywhere on disk.
    """
    folder = path.expanduser().parent
    if folder.is_dir():
        return
    home = get_settings().home.expanduser().resolve()
    if folder.resolve().is_relative_to(home):
        make_folder(folder)
        return
    raise DatabaseUnavailable(
        f"the folder of the SQLite database {str(path)!r} does not exist",
        hint=f"create {str(folder)!r} first, or {_URL_HINT}",
    )


def make_folder(folder: Path) -> Path:
    """Create a folder of the tunelab home, or say in one line why it cannot be and what to do.

    A home that is read-only, on a missing mount or under a file would
    otherwise surface as a traceback from deep inside whatever touched it first.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".tunelab-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise HomeUnwritable(
            f"cannot write to {str(folder)!r}: {exc.strerror or exc}",
            hint="point TUNELAB_HOME at a folder you can write to (default ~/.tunelab), or fix its permissions",
        ) from None
    return folder


def init_db(url: str | None = None) -> Engine:
    """Create or upgrade the schema to the latest migration (``alembic upgrade head``)."""
    url = url or default_url()
    engine = get_engine(url)
    with _upgrade_lock:
        if url in _upgraded:
            return engine
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            check = ("check that the database file's folder is writable" if is_sqlite(url)
                     else "check that the database server is running and the URL is right")  # fmt: skip
            raise DatabaseUnavailable(
                f"cannot open the database {engine.url.render_as_string(hide_password=True)}: {reason}",
                hint=f"{check}; " + _URL_HINT,
            ) from exc
        _upgraded.add(url)
    return engine


def session_factory(
    url: str | None = None, *, migrate: bool = True, role: str = "default", settings: Settings | None = None
) -> sessionmaker[Session]:
    """A sessionmaker bound to the (upgraded) database; rows stay readable after commit.

    ``role`` (``api`` or ``worker``) picks that role's own engine and pool
    limits from ``settings`` (see ``pool_config``).
    """
    if migrate:
        init_db(url)
    return sessionmaker(bind=get_engine(url, role, settings), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def immediate_session(factory: sessionmaker[Session]) -> Session:
    """A session whose transaction takes SQLite's write lock at BEGIN (no-op elsewhere)."""
    session = factory()
    bind = session.get_bind()
    if is_sqlite(bind):  # type: ignore[arg-type]
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    return session


def begin_write(session: Session) -> None:
    """Start ``session``'s transaction with SQLite's write lock, for a unit of work that reads, then writes.

    A deferred SQLite transaction that has read cannot become a writer once
    another connection has committed since its read began (a worker's heartbeat
    every tick does): SQLite answers "database is locked" at once, without
    waiting for ``busy_timeout``. Taking the lock at BEGIN makes the request
    wait its turn instead. A no-op on other databases and once the session's
    transaction has begun.
    """
    if not session.in_transaction() and is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
