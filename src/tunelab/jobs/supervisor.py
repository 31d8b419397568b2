"""Run one claimed job: start the engine, watch it, tail it, and record how it ended.

One ``Supervisor`` per engine process (as in Ray's job supervisor). The engine
runs as ``python -m tunelab.training RUN_DIR`` (a distributed config: its ranks
under torchrun, through ``python -m tunelab.training.launch RUN_DIR``) in its own
session (process group), so signals reach it and its children together; on Linux it also gets
SIGTERM if this worker dies (parent-death signal), so a killed worker's engine
saves a checkpoint and exits instead of training on unsupervised. With
``TUNELAB_ENGINE_NICE`` set, the child also takes that nice value before exec
(so torchrun's ranks inherit it); one it was not allowed (a lower value needs
CAP_SYS_NICE) is logged and recorded as an ``engine_nice`` event.

Every tick (one transaction) the supervisor ingests new run-dir lines, renews
the lease, and reads what the user asked for. Stopping the engine (pause,
cancel, timeout, the worker shutting down) asks once: the ``control`` file
says "pause", or SIGTERM (both mean: finish the running step, save a
checkpoint, exit 75). Then it waits, however long the step and the save take,
as long as the engine shows progress: its ``heartbeat.json``, ``events.jsonl``
or ``metrics.jsonl`` change, or a checkpoint or the output folder grows. Only
after ``stop_no_progress_s`` (``TUNELAB_STOP_NO_PROGRESS_S``) without any
progress does the process group get SIGKILL, with an ``engine_unresponsive``
event. While it stops, the job's ``tail_state["stopping"]`` (shown as the
job's ``stopping`` field) and a ``stopping`` event say "pausing after step N".

A tick that fails on the store (a pool timeout, ``database is locked``, disk
full, a dropped PostgreSQL link) is logged and retried after a bounded
exponential backoff (``tunelab.store.retry.Backoff``, at most a third of the
lease, so a recovered store sees the lease renewed before it expires) while the
engine trains on; preparing and concluding the job are retried the same way.

Interventions (checkpoint now, a new learning rate, stop early) are requests
recorded as job events by ``jobs.service``; each tick relays the new ones into
the same ``control`` file (``training.stopping.write_control``: every request
of this attempt with its event id, rewritten atomically), and the engine
answers with its own events, which the tailer brings back.

With shared artifact storage (``TUNELAB_ARTIFACTS_URL``) a ``RunSync``
(``jobs/artifact_sync.py``) downloads the job's newest uploaded checkpoint
before the engine starts (the job ran on another worker), uploads each
checkpoint as it lands, and uploads what is left (and a completed job's
output) before the job's status changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import TunelabError
from tunelab.jobs.artifact_sync import RunSync
from tunelab.jobs.events import add_event
from tunelab.jobs.outcome import Outcome, decide_outcome, finish
from tunelab.jobs.paths import ADMITTED
from tunelab.jobs.publish import push_output, write_card
from tunelab.jobs.queue import LeaseLost, finish_job, owned_job
from tunelab.jobs.reconcile import stop_stale_engine
from tunelab.jobs.service import intervention_cursor, pending_interventions
from tunelab.jobs.states import JobStatus
from tunelab.jobs.tailer import FILES as TAILED
from tunelab.jobs.tailer import ingest
from tunelab.jobs.trainconfig import build_train_config
from tunelab.monitor.notify import dispatch, job_notification
from tunelab.monitor.resources import record_sample, sample_resources
from tunelab.settings import Settings
from tunelab.store.models import Job, utcnow
from tunelab.store.retry import Backoff, describe, is_transient
from tunelab.training.distributed import engine_command
from tunelab.training.rundir import EXIT, HEARTBEAT, progress_mark, read_json
from tunelab.training.stopping import Command, write_control

log = logging.getLogger("tunelab.worker")
T = TypeVar("T")
#: How a stop is announced ("pausing after step 6"); the keys are the supervisor's actions.
STOP_WORDS = {"pause": "pausing", "cancel": "cancelling", "timeout": "stopping (timeout)",
              "stop": "stopping (the worker is shutting down)"}


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def notify_end(factory: sessionmaker[Session], settings: Settings, job_id: str, status: str | None) -> None:
    """Tell the notification channels that the job completed or failed (local or remote alike).

    Delivery runs on a background thread with its own timeouts
    (``monitor.notify.dispatch``); reading the job or starting the thread
    failing is logged and never changes the job's outcome.
    """
    if status not in (JobStatus.COMPLETED.value, JobStatus.FAILED.value):
        return
    try:
        with factory() as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            note = job_notification(job.to_dict())
        dispatch(factory, settings, note)
    except Exception:
        log.exception("could not send the notifications for %s", job_id)


def _engine_preexec(nice: int | None) -> Callable[[], None]:
    """What the engine's child runs before exec: the parent-death signal, then the nice value if one is set.

    Set here, before exec, so the engine's threads and a distributed run's
    ranks all inherit it. A value the worker may not set (lower than its own
    without CAP_SYS_NICE) leaves the engine at the worker's priority;
    ``Supervisor._check_nice`` reports that.
    """

    def preexec() -> None:
        _set_parent_death_signal()
        if nice is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, nice)

    return preexec


def nice_problem(pid: int, wanted: int | None) -> dict[str, Any] | None:
    """``{message, data}`` when process ``pid`` does not run at nice ``wanted``; None when it does (or none is set)."""
    try:
        actual = os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:  # already gone: its exit code tells why
        return None
    if wanted is None or actual == wanted:
        return None
    message = (f"the training process runs at nice {actual}, not TUNELAB_ENGINE_NICE={wanted}: a value below "
               "the worker's own needs CAP_SYS_NICE (root, or AmbientCapabilities=CAP_SYS_NICE in systemd)")
    return {"message": message, "data": {"wanted": wanted, "actual": actual}}


def stop_action(current: str | None, requested: str | None, timeout_s: float | None, ran: float,
                should_stop: Callable[[], bool]) -> str | None:  # fmt: skip
    """Why a running job stops, once decided: the user's pause or cancel, its time limit, or the worker leaving.

    The one rule for both supervisors (the local engine's and a provider's
    ``RemoteSupervisor``): the first reason found holds until the job stops.
    """
    if current:
        return current
    if requested in ("pause", "cancel"):
        return requested
    if timeout_s is not None and ran > timeout_s:
        return "timeout"
    return "stop" if should_stop() else None


class Supervisor:
    """Owns one engine process for one job attempt."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        job_id: str,
        worker_id: str,
        settings: Settings,
        *,
        lease_s: float,
        tick_s: float = 1.0,
        sample_s: float = 5.0,
        grace_s: float = 30.0,
        should_stop: Any = lambda: False,
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        self.factory, self.job_id, self.worker_id = factory, job_id, worker_id
        self.settings, self.lease_s, self.tick_s = settings, lease_s, tick_s
        self.sample_s, self.grace_s, self.should_stop = sample_s, grace_s, should_stop
        self.on_tick = on_tick  # the worker's heartbeat: /api/health sees a live loop
        self.backoff_max_s = max(tick_s, min(settings.worker_backoff_max_s, lease_s / 3))
        self.run_dir = settings.runs_dir / job_id
        self.action: str | None = None  # pause | cancel | timeout | stop | lost
        self.no_progress_s = settings.stop_no_progress_s
        self._stop_sent_at: float | None = None
        self._term_sent = False
        self._killed = False
        self._progress: tuple[Any, ...] = ()
        self._progress_at = 0.0
        self._notes: list[dict[str, Any]] = []  # supervisor events for the next tick's transaction
        self._stopping_told: tuple[str, Any] | None = None
        self._cursor = 0  # interventions recorded after this event id are for this attempt
        self._relayed: list[Command] = []
        self.artifacts: RunSync | None = None  # shared storage of checkpoints and output, when configured

    # -- start -----------------------------------------------------------------
    def prepare(self) -> tuple[dict[str, Any], int | None, float]:
        """Write config.json; returns (config, pid of a previous engine, seconds already run)."""
        with self.factory() as session:
            job = owned_job(session, self.job_id, self.worker_id)
            config = build_train_config(session, job.config, name=job.name or job.id, paths=ADMITTED)
            previous_pid, ran_s = job.pid, float((job.tail_state or {}).get("run_seconds", 0.0))
            if job.run_dir and job.run_dir != str(self.run_dir):  # another worker's run root: new files,
                job.tail_state = {k: v for k, v in (job.tail_state or {}).items() if k not in TAILED}
                previous_pid = None  # and its pid means nothing here
            job.run_dir = str(self.run_dir)
            self._cursor = intervention_cursor(session, job.id)
            job.error = None  # a new attempt starts clean; what went wrong before stays in the events
            job.tail_state = {**(job.tail_state or {}), "stopping": None}
            session.commit()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("control", EXIT, HEARTBEAT):  # from now on these are this attempt's
            (self.run_dir / name).unlink(missing_ok=True)
        tmp = self.run_dir / "config.json.tmp"
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(self.run_dir / "config.json")
        self.artifacts = RunSync.open(self.settings, self.job_id, self.run_dir)
        if self.artifacts is not None:
            self.artifacts.restore()
        return config, previous_pid, ran_s

    def start(self) -> subprocess.Popen[bytes]:
        # The engine works in its run folder with absolute paths only (config.json's are), so a relative
        # name in a job (a Hub id such as `org/name`) can never mean a folder next to the server.
        run_dir = self.run_dir.resolve()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TUNELAB_JOB_ID": self.job_id,
               "TUNELAB_HOME": str(Path(self.settings.home).resolve())}  # fmt: skip
        with (self.run_dir / "engine.out").open("ab") as out:
            proc = subprocess.Popen(
                engine_command(run_dir),  # the engine, or torchrun's ranks for a distributed config
                cwd=run_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_engine_preexec(self.settings.engine_nice),
                env=env,
            )
        self._check_nice(proc)
        return proc

    def _check_nice(self, proc: subprocess.Popen[bytes]) -> None:
        """Say so (log and job event) when the engine did not get ``TUNELAB_ENGINE_NICE``; it trains anyway."""
        problem = nice_problem(proc.pid, self.settings.engine_nice)
        if problem is not None:
            log.warning("job %s: %s", self.job_id, problem["message"])
            self._notes.append({"time": time.time(), "type": "engine_nice", **problem})

    # -- run -------------------------------------------------------------------
    def run(self) -> str | None:
        """Supervise to the end; returns the job's final status (None if we lost the job)."""
        try:
            _config, previous_pid, ran_s = self.retrying("prepare", self.prepare)
        except LeaseLost:
            return None
        except TunelabError as error:
            finish_job(self.factory, self.job_id, self.worker_id, JobStatus.FAILED, error=error.to_dict())
            self.notify_end(JobStatus.FAILED.value)
            return JobStatus.FAILED.value
        stop_stale_engine(previous_pid, grace_s=self.no_progress_s, run_dir=self.run_dir)
        proc = self.start()
        if self.artifacts is not None:
            self.artifacts.start()
        started, last_sample = time.monotonic(), 0.0
        backoff = Backoff(self.tick_s, self.backoff_max_s)
        requested: str | None = None
        timeout_s: float | None = None
        while True:
            self.on_tick()
            rc = proc.poll()
            wait_s = self.tick_s
            now = time.monotonic()
            sample = None
            if now - last_sample >= self.sample_s and rc is None:
                sample, last_sample = sample_resources(self.settings.home, proc.pid), now
            try:
                requested, timeout_s = self.sync(proc.pid, ran_s + now - started, sample)
                backoff.succeeded()
            except LeaseLost:
                self.action = "lost"
                self.stop_engine(proc, kill_after=self.grace_s)
                if self.artifacts is not None:
                    self.artifacts.stop()
                return None
            except Exception as error:  # the engine trains on; the next tick catches up
                wait_s = backoff.failed()
                self._log_failure("tick", error, wait_s)
            if rc is not None:
                break
            self.decide_action(requested, timeout_s, ran_s + now - started)
            if self.action:
                self.stop_engine(proc)
            time.sleep(wait_s)
        outcome = decide_outcome(rc, self.action, self.run_dir)
        if self.artifacts is not None:  # before the status changes: another worker may resume it next
            self.artifacts.flush(output=outcome.status == JobStatus.COMPLETED)
        status = self.retrying("conclude", lambda: self.conclude(outcome))
        self.notify_end(status)
        return status

    def retrying(self, what: str, step: Callable[[], T]) -> T:
        """Run ``step`` until it gets past transient store errors (backing off between tries).

        Other errors, and a transient one once the worker is stopping, are
        raised: the job keeps its lease and is recovered like a lost one.
        """
        backoff = Backoff(self.tick_s, self.backoff_max_s)
        while True:
            self.on_tick()
            try:
                return step()
            except Exception as error:
                if not is_transient(error) or self.should_stop():
                    raise
                wait_s = backoff.failed()
                self._log_failure(what, error, wait_s)
                time.sleep(wait_s)

    def _log_failure(self, what: str, error: BaseException, wait_s: float) -> None:
        if is_transient(error):
            log.warning("job %s: %s failed (%s); retrying in %.1f s", self.job_id, what, describe(error), wait_s)
        else:
            log.exception("job %s: %s failed; retrying in %.1f s", self.job_id, what, wait_s, exc_info=error)

    def sync(
        self, pid: int, run_seconds: float, sample: dict[str, Any] | None
    ) -> tuple[str | None, float | None]:
        """One transaction: ingest new lines, renew the lease, store a resource sample."""
        with self.factory() as session:
            job = owned_job(session, self.job_id, self.worker_id)
            ingest(session, job, self.run_dir)
            now = utcnow()
            job.heartbeat_at, job.pid = now, pid
            job.lease_expires_at = now + timedelta(seconds=self.lease_s)
            job.tail_state = {**(job.tail_state or {}), "run_seconds": round(run_seconds, 3),
                              **self.stopping_state(session, job)}
            for note in self._notes + (self.artifacts.drain_notes() if self.artifacts else []):
                add_event(session, job.id, "event", note)
            self._notes = []
            if sample is not None:
                record_sample(session, sample, job_id=job.id, worker_id=self.worker_id)
                add_event(session, job.id, "resources", sample)
            self.relay_interventions(session)
            session.commit()
            return job.requested_action, job.timeout_s

    def stopping_state(self, session: Session, job: Job) -> dict[str, Any]:
        """The engine's heartbeat, and while we stop it, ``stopping: {action, after_step}`` (+ one event)."""
        beat = read_json(self.run_dir / HEARTBEAT) or {}
        engine = {key: beat.get(key) for key in ("step", "phase", "stop_after")}
        if self._stop_sent_at is None or self.action not in STOP_WORDS:
            return {"engine": engine}
        after = beat.get("stop_after")
        previous = (job.tail_state or {}).get("stopping") or {}
        stopping = {"action": self.action, "after_step": after, "since": previous.get("since") or utcnow().isoformat()}
        if self._stopping_told != (self.action, after):
            self._stopping_told = (self.action, after)
            what = STOP_WORDS[self.action]
            when = f"after step {after}" if after is not None else "at the end of the running step"
            add_event(session, job.id, "event", {
                "time": time.time(), "type": "stopping",
                "message": f"{what} {when}: the step ends and a checkpoint is saved, however long that takes",
                "data": {"action": self.action, "after_step": after},
            })  # fmt: skip
        return {"engine": engine, "stopping": stopping}

    def relay_interventions(self, session: Session) -> None:
        """Write requests not relayed yet into the control file (all of them, atomically)."""
        known = {command.id for command in self._relayed}
        new = [Command(action, event_id, value) for event_id, action, value
               in pending_interventions(session, self.job_id, self._cursor) if event_id not in known]
        if new:
            self._relayed.extend(new)
            self.write_control()

    def write_control(self) -> None:
        """The control file: every relayed request, plus ``pause`` once we are stopping the engine."""
        stopping = self._stop_sent_at is not None and self.action in ("pause", "stop")
        write_control(self.run_dir / "control", self._relayed, pause=stopping)

    def decide_action(self, requested: str | None, timeout_s: float | None, ran: float) -> None:
        self.action = stop_action(self.action, requested, timeout_s, ran, self.should_stop)

    def stop_engine(self, proc: subprocess.Popen[bytes], kill_after: float | None = None) -> None:
        """Ask once (control file for pause/stop, else SIGTERM); SIGKILL only after no progress.

        ``kill_after`` (the lease was lost: another worker may own the job now)
        waits that long for the exit, then kills.
        """
        now = time.monotonic()
        if self._stop_sent_at is None:
            self._stop_sent_at = self._progress_at = now
            self._progress = self.progress_mark()
            if self.action in ("pause", "stop"):
                self.write_control()
            else:
                self._signal(proc, signal.SIGTERM)
                self._term_sent = True
        elif not self._killed:
            mark = self.progress_mark()
            if mark != self._progress:
                self._progress, self._progress_at = mark, now
            elif now - self._progress_at > self.no_progress_s:
                self._killed = True
                self._signal(proc, signal.SIGKILL)
                self._notes.append({
                    "time": time.time(), "type": "engine_unresponsive",
                    "message": f"the training process showed no progress for {now - self._progress_at:.0f} s "
                               f"after the {self.action} request (limit {self.no_progress_s:g} s, "
                               "TUNELAB_STOP_NO_PROGRESS_S); it was killed, the newest valid checkpoint is kept",
                    "data": {"action": self.action, "no_progress_s": self.no_progress_s},
                })  # fmt: skip
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()

    def progress_mark(self) -> tuple[Any, ...]:
        return progress_mark(self.run_dir)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    # -- end -------------------------------------------------------------------
    def notify_end(self, status: str | None) -> None:
        notify_end(self.factory, self.settings, self.job_id, status)

    def conclude(self, outcome: Outcome) -> str | None:
        """Final ingest, model card and outputs, the status change, then any Hub push.

        Returns the final status; None if the job was no longer ours.
        """
        (self.run_dir / "control").unlink(missing_ok=True)
        with self.factory() as session:
            try:
                job = owned_job(session, self.job_id, self.worker_id)
            except LeaseLost:
                return None
            ingest(session, job, self.run_dir)
            for note in self.artifacts.drain_notes() if self.artifacts else []:
                add_event(session, job.id, "event", note)
            if outcome.status == JobStatus.COMPLETED:
                write_card(job, self.run_dir)
            finish(session, job, outcome, self.run_dir)
            session.commit()
            status = job.status
        if status == JobStatus.COMPLETED:
            push_output(self.factory, self.job_id, self.run_dir, self.settings)
            # metrics and the retention probe, on a thread: never fails or delays the job
            from tunelab.evaluation.service import evaluate_job_async

            evaluate_job_async(self.factory, self.job_id, self.run_dir)
        return status

