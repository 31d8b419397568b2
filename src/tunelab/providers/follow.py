"""Run one claimed job on a remote provider: start it there, follow it here, and record how it ended.

``RemoteSupervisor`` is the remote counterpart of ``jobs.supervisor.Supervisor``
(which the worker keeps for ``provider: local``; ``supervisor_for`` picks):

1. start: the job's dataset (and eval dataset) file is uploaded and the
   remote job created, once; ``jobs.remote`` keeps its ids, so a worker that
   takes the job over follows the same remote job instead of starting another.
   A remote job paused through this studio is resumed there.
2. every poll (the provider's ``poll_s``): the remote status, then the events
   after the newest one stored (``recording.record_events``), the checkpoints
   when something happened, all stored with the cursor in one transaction.
   The lease is renewed by a background thread for the whole run, so a long
   upload or download cannot lose the job to another worker.
3. the user's pause and cancel, and a timeout, are sent to the provider once;
   the job changes status when the remote job shows it did (paused,
   cancelled). A worker shutting down leaves the remote job training and
   gives the job back to the queue.
4. the end is mapped through ``jobs.outcome`` as an engine exit would be:
   succeeded -> completed (a tunelab remote's output is downloaded first, and
   the tuned model joins the collection; an OpenAI model stays remote, its id
   in ``jobs.remote.fine_tuned_model``), failed -> failed with the remote's
   message, pause/cancel/timeout as for the engine.

Remote failures are ``ProviderError``s (``providers/http.py``): transient ones
(unreachable, 429, 5xx) are retried, with one ``provider_unavailable`` event,
for the provider's ``unreachable_s``; others fail the job with their hint (a
refused key names ``TUNELAB_PROVIDER_<NAME>_KEY``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import TunelabError
from tunelab.jobs.events import add_event
from tunelab.jobs.outcome import COMPLETED, FAILED, STOPPED, Outcome, decide_outcome, finish
from tunelab.jobs.paths import ADMITTED
from tunelab.jobs.publish import push_output
from tunelab.jobs.queue import LeaseLost, heartbeat, owned_job
from tunelab.jobs.states import JobStatus
from tunelab.jobs.supervisor import Supervisor, notify_end, stop_action
from tunelab.providers.base import (
    Provider,
    ProviderError,
    RemoteJob,
    RemoteState,
    Result,
    StartRequest,
)
from tunelab.providers.recording import record_checkpoints, record_events
from tunelab.providers.registry import LOCAL, configured, open_provider
from tunelab.settings import Settings
from tunelab.store.db import begin_write
from tunelab.store.retry import Backoff, describe, is_transient

log = logging.getLogger("tunelab.worker")
T = TypeVar("T")
#: What the user's request is called at the provider.
SEND = {"pause": "pause", "cancel": "cancel", "timeout": "cancel"}


def supervisor_for(provider: str, factory: sessionmaker[Session], job_id: str, worker_id: str,
                   settings: Settings, **options: Any) -> Supervisor | RemoteSupervisor:  # fmt: skip
    """The engine's ``Supervisor`` for ``local``, a ``RemoteSupervisor`` for any other provider."""
    if provider == LOCAL:
        return Supervisor(factory, job_id, worker_id, settings, **options)
    keep = {key: options[key] for key in ("lease_s", "tick_s", "should_stop", "on_tick") if key in options}
    return RemoteSupervisor(factory, job_id, worker_id, settings, **keep)


def _event(kind: str, message: str, **data: Any) -> dict[str, Any]:
    return {"time": time.time(), "type": kind, "message": message, "data": data}


class RemoteSupervisor:
    """Follows one remote job for one claim of the local job."""

    def __init__(self, factory: sessionmaker[Session], job_id: str, worker_id: str, settings: Settings, *,
                 lease_s: float, tick_s: float = 1.0, should_stop: Callable[[], bool] = lambda: False,
                 on_tick: Callable[[], None] = lambda: None, provider: Provider | None = None) -> None:  # fmt: skip
        self.factory, self.job_id, self.worker_id = factory, job_id, worker_id
        self.settings, self.lease_s, self.tick_s = settings, lease_s, tick_s
        self.should_stop, self.on_tick = should_stop, on_tick
        self.provider = provider
        self.run_dir = settings.runs_dir / job_id
        self.backoff_max_s = max(tick_s, min(settings.worker_backoff_max_s, lease_s / 3))
        self.action: str | None = None  # pause | cancel | timeout | stop
        self._sent: set[str] = set()
        self._notes: list[dict[str, Any]] = []
        self._outage: float | None = None
        self._give_up = False
        self._lost = threading.Event()
        self.name = ""
        self.poll_s = self.unreachable_s = self.ran_before = 0.0

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> str | None:
        """Follow the remote job to its end here; returns the job's final status (None: lost the job)."""
        remote: RemoteJob | None = None
        with self._keep_lease(), contextlib.closing(self):
            try:
                remote = self._retry_store("start", self.start)
                return self.follow(remote)
            except LeaseLost:
                return None
            except TunelabError as error:  # a refused key, unreadable data, a provider not configured here
                return self.conclude(remote, None, failure=error.to_dict())
            except Exception as error:  # an answer we could not read: fail the job rather than retry forever
                log.exception("job %s: following the remote job failed", self.job_id)
                return self.conclude(remote, None, failure={
                    "code": "provider_error", "message": f"following the job on provider {self.name!r} failed: "
                    f"{type(error).__name__}: {error}", "hint": "see the worker's log; retry the job"})  # fmt: skip

    def close(self) -> None:
        """Close the provider's HTTP client (the run is over)."""
        if self.provider is not None:
            self.provider.close()

    def follow(self, remote: RemoteJob) -> str | None:
        """Poll, store, carry requests over, until the remote job ends or this claim does."""
        started, ran = time.monotonic(), self.ran_before
        while True:
            self.on_tick()
            state, events, found = None, [], None
            try:
                state, events, found = self._read(remote)
            except ProviderError as error:
                if not error.transient:
                    return self.conclude(remote, None, failure=error.to_dict())
                failure = self._unreachable(error)
                if failure is not None:
                    return self.conclude(remote, None, failure=failure)
            sync = functools.partial(self.sync, remote, state, events, found, ran + time.monotonic() - started)
            try:
                remote, requested, timeout_s = self._retry_store("sync", sync)
            except LeaseLost:
                return None
            self._decide(requested, timeout_s, ran + time.monotonic() - started)
            if state is not None and (state.terminal or (state.status == "paused" and self.action == "pause")):
                return self.conclude(remote, state)
            if self.action == "stop":
                return self.conclude(remote, state)
            self._send(remote)
            if self._give_up:
                return self.conclude(remote, state)
            if self._lost.wait(self.poll_s):
                return None

    def _read(self, remote: RemoteJob) -> tuple[RemoteState, list[Any], list[dict[str, Any]] | None]:
        """The remote status, then its new events, and its checkpoints when something happened."""
        assert self.provider is not None
        state = self.provider.poll(remote)
        events = self.provider.events(remote)
        found = self.provider.checkpoints(remote) if events or state.terminal else None
        if self._outage is not None:
            self._notes.append(_event("provider_available", f"provider {self.name!r} answers again after "
                                      f"{time.monotonic() - self._outage:.0f} s"))  # fmt: skip
            self._outage = None
        return state, events, found

    # -- start -----------------------------------------------------------------------------
    def start(self) -> RemoteJob:
        """The remote job of this job: the one it already has, or a new one (upload, create)."""
        with self.factory() as session:
            begin_write(session)  # SQLite: the write lock first, the lease thread writes too
            job = owned_job(session, self.job_id, self.worker_id)
            self.name, stored = job.provider, dict(job.remote or {})
            self.ran_before = float((job.tail_state or {}).get("run_seconds", 0.0))  # timeout_s counts every claim
            job.run_dir, job.error = str(self.run_dir), None
            request = None if stored.get("job_id") else self._request(session, job)
            session.commit()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        limits = configured(self.settings).get(self.name)
        self.poll_s = limits.poll_s if limits else self.tick_s
        self.unreachable_s = limits.unreachable_s if limits else 600.0
        if self.provider is None:
            self.provider = open_provider(self.name, self.settings)
        if request is None:
            remote = RemoteJob.from_dict(stored)
            if remote.status == "paused":
                self._call(lambda: self.provider.resume(remote))  # type: ignore[union-attr]
                self._notes.append(_event("remote_resumed", f"resumed {remote.job_id} on provider {self.name!r}"))
            return remote
        start = functools.partial(self.provider.start, request())
        remote = self._call(start)
        with self.factory() as session:
            begin_write(session)  # SQLite: the write lock first, the lease thread writes too
            job = owned_job(session, self.job_id, self.worker_id)
            job.remote = remote.to_dict()
            add_event(session, job.id, "event", _event(
                "remote_started", f"training on provider {self.name!r} ({self.provider.kind}) as {remote.job_id}",
                provider=self.name, remote_job=remote.job_id, training_file=remote.training_file, sent=remote.sent))
            if remote.sent.get("not_sent"):
                add_event(session, job.id, "event", _event(
                    "remote_settings_not_sent", f"provider {self.name!r} takes no {', '.join(remote.sent['not_sent'])}"
                    "; the job trains with its defaults for these", fields=remote.sent["not_sent"]))
            session.commit()
        return remote

    def _request(self, session: Session, job: Any) -> Callable[[], StartRequest]:
        """What a provider needs, read after the transaction: datasets resolved and read as the engine reads them."""
        from tunelab.jobs.datasets import resolve
        from tunelab.training.data import read_records

        hyper = dict((job.config or {}).get("hyperparameters") or {})
        fmt, mapping = hyper.get("dataset_format"), hyper.get("dataset_mapping")
        training = resolve(session, job.config["dataset"], settings=self.settings, paths=ADMITTED,
                           field="configuration.dataset")  # fmt: skip
        validation = None
        if isinstance(hyper.get("eval_dataset"), str) and hyper["eval_dataset"]:
            validation = resolve(session, hyper["eval_dataset"], settings=self.settings, paths=ADMITTED,
                                 field="hyperparameters.eval_dataset")  # fmt: skip
        job_id, name, model = job.id, job.name or job.id, str(job.config["model"])

        def build() -> StartRequest:
            return StartRequest(job_id, name, model, hyper, read_records(training, fmt, mapping), self.run_dir / "upload",
                                read_records(validation, fmt, mapping) if validation else None)  # fmt: skip

        return build

    # -- each poll -------------------------------------------------------------------------
    def sync(self, remote: RemoteJob, state: RemoteState | None, events: list[Any],
             found: list[dict[str, Any]] | None, run_seconds: float) -> tuple[RemoteJob, str | None, float | None]:  # fmt: skip
        """One transaction: events, metrics, checkpoints and the cursor; returns what the user asked for."""
        moved = RemoteJob.from_dict(remote.to_dict())  # the cursor moves only if this commits
        with self.factory() as session:
            begin_write(session)  # SQLite: the write lock first, the lease thread writes too
            job = owned_job(session, self.job_id, self.worker_id)
            record_events(session, job, moved, events)
            if found is not None:
                record_checkpoints(session, job, moved, found)
            if state is not None:
                moved.status, moved.fine_tuned_model = state.status, state.fine_tuned_model or moved.fine_tuned_model
            for note in self._notes:
                add_event(session, job.id, "event", note)
            job.remote = moved.to_dict()
            job.tail_state = {**(job.tail_state or {}), "run_seconds": round(run_seconds, 3)}
            session.commit()
            self._notes = []
            return moved, job.requested_action, job.timeout_s

    def _decide(self, requested: str | None, timeout_s: float | None, ran: float) -> None:
        self.action = stop_action(self.action, requested, timeout_s, ran, self.should_stop)

    def _send(self, remote: RemoteJob) -> None:
        """Carry a pause, cancel or timeout to the provider, once; a refusal is told, not fatal."""
        call = SEND.get(self.action or "")
        if call is None or call in self._sent:
            return
        try:
            getattr(self.provider, call)(remote)
        except ProviderError as error:
            if not error.transient:  # a transient failure: the next poll tries again
                self._refused(call, error)
            return
        self._sent.add(call)

    def _refused(self, call: str, error: ProviderError) -> None:
        """The provider would not pause (or cancel) now: say so; a pause trains on, a cancel ends here."""
        self._notes.append(_event(f"remote_{call}_refused", f"provider {self.name!r} refused to {call}: "
                                  f"{error.message}", code=error.code))  # fmt: skip
        if self.action != "pause":
            self._give_up = True  # cancel or timeout: ends here all the same, the remote job left as it is
            return
        self.action = None
        with self.factory() as session:
            begin_write(session)  # SQLite: the write lock first, the lease thread writes too
            job = owned_job(session, self.job_id, self.worker_id)
            job.requested_action = None
            session.commit()

    def _unreachable(self, error: ProviderError) -> dict[str, Any] | None:
        """Note an outage once; past ``unreachable_s`` the failure that ends the job."""
        now = time.monotonic()
        if self._outage is None:
            self._outage = now
            self._notes.append(_event("provider_unavailable", f"{error.message}; retrying for "
                                      f"{self.unreachable_s:g} s", hint=error.hint))  # fmt: skip
        if now - self._outage <= self.unreachable_s:
            return None
        return {"code": error.code, "message": f"{error.message} for {now - self._outage:.0f} s", "hint": error.hint}

    # -- the end ---------------------------------------------------------------------------
    def outcome(self, state: RemoteState | None, failure: dict[str, Any] | None) -> tuple[Outcome, dict[str, Any] | None]:
        """The job's outcome, through the engine's rules (``decide_outcome``), and the failure to report.

        As for an engine that stopped after a checkpoint: the worker shutting down
        (the remote job trains on, the next worker follows it) queues the job, a
        pause the remote carried out pauses it, a cancel (or one the provider
        refused: the remote job is left alone) or a timeout ends it.
        """
        if failure is None and state is not None and state.status == "succeeded":
            return decide_outcome(COMPLETED, None, self.run_dir), None
        stopped = state is not None and state.status in ("paused", "cancelled")
        if failure is None and stopped and self.action in ("pause", "cancel", "timeout"):
            return decide_outcome(STOPPED, self.action, self.run_dir), None
        if failure is None and (self._give_up or state is None or not state.terminal):  # stop, refused cancel
            return decide_outcome(STOPPED, self.action or "stop", self.run_dir), None
        if failure is None and state is not None:
            said = (state.error or {}).get("message") or f"the remote job ended {state.status}"
            failure = {"code": "remote_failed" if state.status == "failed" else "remote_cancelled",
                       "message": f"provider {self.name!r}: {said}",
                       "hint": "see the job's remote events for why; fix it and retry the job"}  # fmt: skip
        return decide_outcome(FAILED, None, self.run_dir), failure

    def conclude(self, remote: RemoteJob | None, state: RemoteState | None, *,
                 failure: dict[str, Any] | None = None) -> str | None:  # fmt: skip
        """Bring the result home (on success), apply the outcome, notify; returns the final status."""
        outcome, failure = self.outcome(state, failure)
        result = self._result(remote) if remote is not None and outcome.status == JobStatus.COMPLETED else None
        outcome.extra = {"provider": self.name, "remote_job": remote.job_id if remote else None}
        if self.action == "stop":
            outcome.extra["reason"] = "the worker is shutting down; the remote job trains on"
        with self.factory() as session:
            begin_write(session)  # SQLite: the write lock first, the lease thread writes too
            try:
                job = owned_job(session, self.job_id, self.worker_id)
            except LeaseLost:
                return None
            for note in self._notes:
                add_event(session, job.id, "event", note)
            if remote is not None:
                job.remote = {**remote.to_dict(), **({"result": result.note, "files": result.files} if result else {})}
                if result and result.fine_tuned_model:
                    job.remote["fine_tuned_model"] = result.fine_tuned_model
            if failure is not None:
                job.tail_state = {**(job.tail_state or {}), "failure": failure}
            finish(session, job, outcome, self.run_dir, local_model=bool(result and result.weights))
            session.commit()
            status = job.status
        if status == JobStatus.COMPLETED and result is not None and result.weights:
            push_output(self.factory, self.job_id, self.run_dir, self.settings)
        notify_end(self.factory, self.settings, self.job_id, status)
        return status

    def _result(self, remote: RemoteJob) -> Result:
        """``fetch_result``; a download that fails for good completes the job with the remote id and says so."""
        assert self.provider is not None
        try:
            result = self._call(lambda: self.provider.fetch_result(remote, self.run_dir / "output"))  # type: ignore[union-attr]
        except ProviderError as error:
            result = Result(remote.fine_tuned_model, [], f"the output could not be downloaded: {error.message}")
        self._notes.append(_event("remote_result", result.note, fine_tuned_model=result.fine_tuned_model,
                                  files=len(result.files), weights=result.weights))  # fmt: skip
        return result

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, step: Callable[[], T]) -> T:
        """A provider call, retried through transient failures for the provider's ``unreachable_s``."""
        backoff = Backoff(self.tick_s, max(self.backoff_max_s, self.tick_s))
        while True:
            self.on_tick()
            try:
                result = step()
            except ProviderError as error:
                if not error.transient or self._lost.is_set():
                    raise
                failure = self._unreachable(error)
                if failure is not None:
                    raise ProviderError(failure["message"], failure["hint"], code=failure["code"]) from error
                self._lost.wait(backoff.failed())
                continue
            self._outage = None
            return result

    def _retry_store(self, what: str, step: Callable[[], T]) -> T:
        """``step`` retried through transient store errors (as the engine's supervisor does)."""
        backoff = Backoff(self.tick_s, self.backoff_max_s)
        while True:
            try:
                return step()
            except Exception as error:
                if not is_transient(error) or self.should_stop():
                    raise
                wait_s = backoff.failed()
                log.warning("job %s: %s failed (%s); retrying in %.1f s", self.job_id, what, describe(error), wait_s)
                time.sleep(wait_s)

    @contextlib.contextmanager
    def _keep_lease(self) -> Iterator[None]:
        """Renew the lease every tick on a thread while the run lasts; a lost lease stops the run."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.tick_s):
                try:
                    heartbeat(self.factory, self.job_id, self.worker_id, lease_s=self.lease_s)
                except LeaseLost:
                    self._lost.set()
                    return
                except Exception as error:  # the store hiccups: the next renewal catches up
                    log.warning("job %s: lease renewal failed (%s)", self.job_id, describe(error))

        thread = threading.Thread(target=renew, name=f"lease-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=10)
