"""The sweep driver: asks Optuna for trials, makes each an ordinary job, reports back, prunes.

``SweepDriver(factory).run_forever()`` is a thread of ``tunelab serve``;
``tick()`` does one pass over the running sweeps (tests call it directly).
Per sweep, one pass (under the sweep's driver lease, so only one driver of
any number of processes works on a sweep at a time):

1. **adopt**: an Optuna trial that is running but has no ``sweep_trials`` row
   was asked for by a driver that stopped before its job was made; its job is
   made now, with the values Optuna already chose;
2. **sync**: each running trial's job is read from the store: new values of
   the objective are reported to Optuna (``trial.report``) and the pruner is
   asked (``should_prune``: the job is then cancelled and the trial is
   ``pruned``); a finished job tells Optuna its final objective (or a failure);
3. **ask**: while the budget (trials or minutes) and ``parallel`` allow, a new
   trial is asked for and its job queued;
4. **finish**: with nothing left to ask and nothing running, the sweep is
   ``completed`` and its best configuration saved.

Exactly once: a trial row and its job are committed in one transaction (the
job service's), and the trial count that limits asking is Optuna's own
(adopted orphans included), so however often the service restarts, a sweep of
N trials has exactly N trials and each ran as exactly one job.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import TunelabError
from tunelab.jobs.paths import ADMITTED
from tunelab.jobs.states import JobStatus
from tunelab.store.models import Evaluation, Job, Metric, ModelEntry, Sweep, SweepTrial, utcnow
from tunelab.store.retry import Backoff, describe, is_transient
from tunelab.sweeps import study as studies
from tunelab.sweeps.service import database_url, is_evaluation_objective, save_best, trial_config

log = logging.getLogger("tunelab.sweeps")


def tell(session: Session, study: Any, number: int, value: float | None = None, state: Any = None) -> None:
    """Finish an Optuna trial (once: a trial already finished is left as it is).

    Our transaction is ended first: Optuna writes through its own connection,
    and on SQLite a transaction that read before another connection's commit
    can no longer write (``database is locked``, at once).
    """
    session.commit()
    try:
        study.tell(number, value, state=state, skip_if_finished=True)
    except RuntimeError as error:  # the grid sampler calls study.stop() once the grid is done; the result is stored
        if "Study.stop" not in str(error):
            raise


def objective_values(session: Session, job_id: str, metric: str, after: int | None) -> list[tuple[int, float]]:
    """(step, value) of ``metric`` logged by the job after step ``after``, by step."""
    column = getattr(Metric, metric, None) if metric in Metric.__table__.columns else None
    query = select(Metric).where(Metric.job_id == job_id, Metric.step > (after or 0)).order_by(Metric.step)
    out = []
    for row in session.scalars(query):
        value = getattr(row, metric) if column is not None else (row.data or {}).get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append((row.step, float(value)))
    return out


#: How long a completed trial waits for its after-job evaluation to appear before it counts as failed.
EVALUATION_START_S = 600.0


def evaluation_value(session: Session, job: Job, metric: str) -> tuple[str, float | None, str | None]:
    """``(state, value, message)`` of an evaluation objective (``sweeps.service.is_evaluation_objective``).

    The evaluation runs on a thread after the job completed, so a completed
    trial waits for it (``pending``); one that never started (the worker
    stopped in between) fails after ``EVALUATION_START_S``.
    """
    from tunelab.evaluation.service import job_evaluation_value

    state, value, message = job_evaluation_value(session, job.id, metric)
    finished = job.finished_at or job.updated_at
    if state == "pending" and finished is not None and utcnow() - finished > timedelta(seconds=EVALUATION_START_S):
        has_row = session.scalar(select(Evaluation.id).where(Evaluation.job_id == job.id, Evaluation.source == "job"))
        if has_row is None:
            return "failed", None, f"the job's after-job evaluation did not start within {EVALUATION_START_S:.0f} s"
    return state, value, message


def release_weights(session: Session, job: Job) -> None:
    """An evaluation-objective trial kept its weights for its evaluation; once read, they go as with saveModel false."""
    from tunelab.jobs.outcome import discard_weights
    from tunelab.store.catalog import tuned_model_id

    entry = session.get(ModelEntry, tuned_model_id(str(job.config.get("model") or ""), job.name, job.id))
    if entry is not None:
        session.delete(entry)
    if job.run_dir:
        discard_weights(session, job, Path(job.run_dir))
    session.commit()


def final_value(session: Session, job: Job, metric: str) -> float | None:
    """The objective of a completed job: its last logged value, else the end-of-run evaluation."""
    from tunelab.jobs.outcome import _final_metrics

    values = objective_values(session, job.id, metric, None)
    if values:
        return values[-1][1]
    found = _final_metrics(session, job).get(metric)
    return float(found) if isinstance(found, int | float) else None


class SweepDriver:
    """Drives every running sweep of one store; safe to run in several processes at once."""

    def __init__(self, factory: sessionmaker[Session], driver_id: str | None = None, *, tick_s: float = 2.0,
                 lease_s: float = 30.0, capacity: int | None = None) -> None:  # fmt: skip
        from tunelab.jobs.reconcile import make_worker_id

        self.factory, self.tick_s, self.lease_s, self.capacity = factory, tick_s, lease_s, capacity
        self.driver_id = driver_id or make_worker_id(f"sweeps-{uuid.uuid4().hex[:6]}")
        self._stop = threading.Event()
        self._backoff = Backoff(0.5, 30.0)

    # -- loop --------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Tick until ``stop()``; a failed tick is logged and retried after a backoff, never fatal."""
        while not self._stop.is_set():
            try:
                self.tick()
                self._backoff.succeeded()
                wait_s = self.tick_s
            except Exception as error:
                wait_s = self._backoff.failed()
                if is_transient(error):
                    log.warning("sweep driver: %s; retrying in %.1f s", describe(error), wait_s)
                else:
                    log.exception("sweep driver: tick failed; retrying in %.1f s", wait_s, exc_info=error)
            self._stop.wait(wait_s)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="tunelab-sweeps", daemon=True)
        thread.start()
        return thread

    def tick(self) -> int:
        """One pass over the running sweeps; returns how many this driver worked on."""
        with self.factory() as session:
            ids = list(session.scalars(select(Sweep.id).where(Sweep.status == "running").order_by(Sweep.created_at)))
        done = 0
        for sweep_id in ids:
            with self.factory() as session:
                if not self._lease(session, sweep_id):
                    continue
                self.step(session, session.get(Sweep, sweep_id))
                done += 1
        return done

    def _lease(self, session: Session, sweep_id: str) -> bool:
        """Take or renew this sweep's driver lease (compare-and-swap); False if another driver holds it."""
        now = utcnow()
        result = session.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id, Sweep.status == "running",
                   or_(Sweep.driver_id.is_(None), Sweep.driver_id == self.driver_id,
                       Sweep.driver_lease_expires_at < now))
            .values(driver_id=self.driver_id, driver_lease_expires_at=now + timedelta(seconds=self.lease_s))
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- one sweep -------------------------------------------------------------------------------
    def step(self, session: Session, sweep: Sweep) -> None:
        """One pass over one sweep (see the module docstring).

        Optuna writes through its own connections, so our transaction is
        ended (``session.commit()``) before each of its writes: on SQLite a
        read transaction that saw the database before another connection's
        commit can no longer write (``database is locked``, at once).
        """
        import optuna

        url = database_url(session)
        study = studies.load(url, sweep)
        rows = {row.number: row for row in session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep.id))}
        for frozen in study.get_trials(deepcopy=False):
            if frozen.number not in rows and frozen.state == optuna.trial.TrialState.RUNNING:
                rows[frozen.number] = self._adopt(session, sweep, study, frozen)
        for row in rows.values():
            if row is not None and row.state == "running":
                self._sync(session, sweep, study, row)
        asked = len(study.get_trials(deepcopy=False))
        active = sum(1 for row in rows.values() if row is not None and self._active(session, row))
        capacity = min(sweep.parallel, self.capacity or sweep.parallel)
        while self._may_ask(sweep, asked) and active < capacity:
            session.commit()
            asking = studies.load(url, sweep, seed_offset=asked)
            frozen = asking.ask(studies.distributions(sweep.search))
            self.make_trial(session, sweep, asking, frozen.number, frozen._trial_id, dict(frozen.params))
            asked, active = asked + 1, active + 1
        if not self._may_ask(sweep, asked) and not any(
            self._active(session, row) or row.state == "running"
            for row in session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep.id))
        ):
            self._finish(session, sweep)

    def _may_ask(self, sweep: Sweep, asked: int) -> bool:
        if sweep.n_trials is not None and asked >= sweep.n_trials:
            return False
        if sweep.budget_minutes is not None:
            return utcnow() < sweep.created_at + timedelta(minutes=sweep.budget_minutes)
        return True

    @staticmethod
    def _active(session: Session, row: SweepTrial) -> bool:
        job = session.get(Job, row.job_id) if row.job_id else None
        return job is not None and not JobStatus(job.status).is_terminal()

    def _adopt(self, session: Session, sweep: Sweep, study: Any, frozen: Any) -> SweepTrial | None:
        import optuna

        missing = set(sweep.search) - set(frozen.params)
        if missing:
            session.commit()
            tell(session, study, frozen.number, state=optuna.trial.TrialState.FAIL)
            return self._failed_row(session, sweep, frozen.number, frozen._trial_id, dict(frozen.params),
                                    f"the driver stopped before choosing {', '.join(sorted(missing))}")  # fmt: skip
        log.info("sweep %s: adopting trial %s (asked before a restart)", sweep.id, frozen.number)
        return self.make_trial(session, sweep, study, frozen.number, frozen._trial_id, dict(frozen.params))

    def make_trial(self, session: Session, sweep: Sweep, study: Any, number: int, trial_id: int,
                   params: dict[str, Any]) -> SweepTrial | None:  # fmt: skip
        """The trial's row and its queued job, committed together (``create_job``'s commit)."""
        import optuna

        from tunelab.jobs import service as jobs
        from tunelab.jobs.configurations import save_configuration

        config = trial_config(sweep, params)
        keep = is_evaluation_objective(sweep.objective)  # its evaluation loads the weights; released once read
        row = SweepTrial(sweep_id=sweep.id, number=number, optuna_trial_id=trial_id, params=params,
                         state="running", intermediate=[])  # fmt: skip
        try:
            saved = save_configuration(session, config, mode="automated", commit=False, paths=ADMITTED)
            session.add(row)
            job = jobs.create_job(session, config, name=f"{sweep.name} #{number}",
                                  tags=["sweep", f"sweep:{sweep.id}", f"trial:{number}"],
                                  save_options={"save_model": keep}, configuration_id=saved.id, paths=ADMITTED)  # fmt: skip
        except TunelabError as error:
            session.rollback()  # also ends our read, before Optuna writes (see ``step``)
            tell(session, study, number, state=optuna.trial.TrialState.FAIL)
            return self._failed_row(session, sweep, number, trial_id, params, f"{error.message} ({error.hint})")
        row.job_id = job.id
        session.commit()
        log.info("sweep %s: trial %s is job %s with %s", sweep.id, number, job.id, params)
        return row

    @staticmethod
    def _failed_row(session: Session, sweep: Sweep, number: int, trial_id: int, params: dict[str, Any],
                    message: str) -> SweepTrial:  # fmt: skip
        row = SweepTrial(sweep_id=sweep.id, number=number, optuna_trial_id=trial_id, params=params,
                         state="fail", intermediate=[], message=message, finished_at=utcnow())  # fmt: skip
        session.add(row)
        session.commit()
        return row

    def _find_job(self, session: Session, sweep: Sweep, row: SweepTrial) -> Job | None:
        """A row committed with its job but without the job's id (a stop between two commits)."""
        tag = f"trial:{row.number}"
        for job in session.scalars(select(Job).where(Job.name == f"{sweep.name} #{row.number}")):
            if f"sweep:{sweep.id}" in (job.tags or []) and tag in (job.tags or []):
                return job
        return None

    def _sync(self, session: Session, sweep: Sweep, study: Any, row: SweepTrial) -> None:
        """Report new values; prune; or record how the finished job ended."""
        import optuna

        job = session.get(Job, row.job_id) if row.job_id else self._find_job(session, sweep, row)
        if job is None:
            return
        row.job_id = job.id
        frozen = study._storage.get_trial(row.optuna_trial_id)
        if frozen.state != optuna.trial.TrialState.RUNNING:  # told before a restart; copy its state
            self._record(session, sweep, row, frozen.state.name.lower(), frozen.value, None)
            return
        new = objective_values(session, job.id, sweep.objective, row.reported_step)
        status = JobStatus(job.status)
        session.commit()  # end our read before Optuna writes (see ``step``)
        if new and (not status.is_terminal() or status == JobStatus.COMPLETED):
            trial = optuna.trial.Trial(study, row.optuna_trial_id)
            for step, value in new:
                trial.report(value, step)
            row.intermediate = [*row.intermediate, *[[step, value] for step, value in new]]
            row.reported_step = new[-1][0]
            session.commit()
            if not status.is_terminal() and trial.should_prune():
                self._prune(session, sweep, study, row, job, new[-1])
                return
        if status == JobStatus.COMPLETED and is_evaluation_objective(sweep.objective):
            self._evaluated(session, sweep, study, row, job)
        elif status == JobStatus.COMPLETED:
            value = final_value(session, job, sweep.objective)
            if value is None:
                tell(session, study, row.number, state=optuna.trial.TrialState.FAIL)
                self._record(session, sweep, row, "fail", None, f"the job logged no `{sweep.objective}`")
            else:
                tell(session, study, row.number, value)
                self._record(session, sweep, row, "complete", value, None)
        elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
            tell(session, study, row.number, state=optuna.trial.TrialState.FAIL)
            message = (job.error or {}).get("message") if status == JobStatus.FAILED else "the job was cancelled"
            self._record(session, sweep, row, "fail", None, message or f"the job {status.value}")

    def _evaluated(self, session: Session, sweep: Sweep, study: Any, row: SweepTrial, job: Job) -> None:
        """A completed trial with an evaluation objective: told once its after-job evaluation has the value."""
        import optuna

        state, value, message = evaluation_value(session, job, sweep.objective)
        if state == "pending":
            return
        if state == "done":
            tell(session, study, row.number, value)
            self._record(session, sweep, row, "complete", value, None)
        else:
            tell(session, study, row.number, state=optuna.trial.TrialState.FAIL)
            self._record(session, sweep, row, "fail", None, message)
        release_weights(session, job)

    def _prune(self, session: Session, sweep: Sweep, study: Any, row: SweepTrial, job: Job,
               last: tuple[int, float]) -> None:  # fmt: skip
        import optuna

        from tunelab.jobs import service as jobs
        from tunelab.jobs.events import add_event

        session.commit()
        tell(session, study, row.number, state=optuna.trial.TrialState.PRUNED)
        message = f"pruned at step {last[0]}: {sweep.objective} {last[1]:.4g} is worse than the other trials there"
        add_event(session, job.id, "event", {"time": time.time(), "type": "pruned", "message": message,
                                              "data": {"sweep_id": sweep.id, "trial": row.number}})  # fmt: skip
        self._record(session, sweep, row, "pruned", last[1], message)
        jobs.cancel_job(session, job.id)
        log.info("sweep %s: trial %s (%s) %s", sweep.id, row.number, job.id, message)

    def _record(self, session: Session, sweep: Sweep, row: SweepTrial, state: str, value: float | None,
                message: str | None) -> None:  # fmt: skip
        row.state, row.value, row.finished_at = state, value, row.finished_at or utcnow()
        if message:
            row.message = message
        session.commit()
        if state == "complete" and value is not None:
            better = sweep.best_value is None or (value > sweep.best_value if sweep.direction == "maximize"
                                                   else value < sweep.best_value)  # fmt: skip
            if better:
                save_best(session, sweep, row)

    def _finish(self, session: Session, sweep: Sweep) -> None:
        done = session.scalar(select(SweepTrial.id).where(SweepTrial.sweep_id == sweep.id,
                                                          SweepTrial.state == "complete").limit(1))  # fmt: skip
        sweep.status = "completed" if done is not None else "failed"
        if done is None:
            sweep.error = {"code": "no_trial_completed", "message": "no trial completed",
                           "hint": "see the trials' messages and their jobs' logs"}  # fmt: skip
        sweep.finished_at = utcnow()
        sweep.driver_id = None
        session.commit()
        log.info("sweep %s %s (best trial %s: %s)", sweep.id, sweep.status, sweep.best_trial, sweep.best_value)
