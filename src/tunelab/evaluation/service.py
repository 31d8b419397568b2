"""Evaluations in the store: create, run in the background, list, show; a job's automatic evaluation.

The runner itself (``run.run_evaluation``) knows nothing of the store; this
module turns a request into a row, runs it on a thread with its own session
(an API request returns the id at once, ``GET /api/evaluations/{id}`` shows
progress), and keeps the result. Names from the API are resolved here the way
chat resolves them (``serving.registry.chat_location``: collection entries,
job ids, built-in ids; never a server path) and datasets through the dataset
service, so bad input is refused with a 4xx before a row exists. A failure
while running is stored on the evaluation (``status: failed`` with code,
message and hint); a job's own evaluation can fail without changing the job.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import InvalidInput, NotFound, TunelabError
from tunelab.evaluation.judge import JudgeConfig
from tunelab.evaluation.metrics import parse_metrics
from tunelab.evaluation.rows import load_rows, rows_from_records
from tunelab.evaluation.run import MAX_AGAINST, EvalRequest, run_evaluation, side_keys
from tunelab.store.models import Evaluation, Job, utcnow
from tunelab.store.retry import write_retrying

log = logging.getLogger("tunelab.evaluation")
STATUSES = ("queued", "running", "completed", "failed")


def new_id() -> str:
    return f"ev-{uuid.uuid4().hex[:12]}"


def _judge(body: dict[str, Any] | None) -> JudgeConfig | None:
    if not body or not body.get("url"):
        return None
    fields = {k: body[k] for k in ("url", "model", "rubric", "api_key", "timeout_s") if body.get(k) is not None}
    fields.setdefault("model", "default")
    config = JudgeConfig(**fields)
    config.endpoint()  # refuse a non-http URL now, not per row later
    return config


def check_request(request: dict[str, Any]) -> None:
    """Refuse what would fail at once (unknown metric, missing column, bad judge URL) before storing a row."""
    request["metrics"] = parse_metrics(request.get("metrics"))
    if isinstance(request.get("against"), list) and len(request["against"]) > MAX_AGAINST:
        raise InvalidInput(f"{len(request['against'])} models to compare against; at most {MAX_AGAINST}",
                           "split them over several evaluations")  # fmt: skip
    _judge(request.get("judge"))
    if request.get("data_path"):
        load_rows(request["data_path"], prompt_column=request.get("prompt_column"),
                  reference_column=request.get("reference_column"), limit=1)  # fmt: skip
    if request.get("regression_set_path"):
        load_rows(request["regression_set_path"], limit=1)


def create(session: Session, request: dict[str, Any], *, name: str = "", source: str = "api",
           job_id: str | None = None) -> Evaluation:  # fmt: skip
    """Check the request and store it as a queued evaluation (committed)."""
    check_request(request)
    stored = {k: v for k, v in request.items() if k != "judge"}
    if request.get("judge"):
        stored["judge"] = {k: v for k, v in request["judge"].items() if k != "api_key"}  # no secrets in the store
    row = Evaluation(id=new_id(), name=name or f"{request.get('model_name') or request['model']}", status="queued",
                     source=source, job_id=job_id, model=str(request.get("model_name") or request["model"]),
                     against=_joined(request.get("against_name") or request.get("against")),
                     dataset=request.get("dataset"), request=stored)  # fmt: skip
    session.add(row)
    session.commit()
    return row


def _joined(names: str | list[str] | None) -> str | None:
    """The ``against`` column: one name, or several comma-separated (the request keeps the list)."""
    return ", ".join(names) if isinstance(names, list) else names


def _labels(stored: dict[str, Any]) -> dict[str, str]:
    """Side key -> the name the user gave (``against_name`` is one name or a list, one per side)."""
    labels = {"model": str(stored["model_name"])} if stored.get("model_name") else {}
    names = stored.get("against_name")
    names = [names] if isinstance(names, str) else list(names or [])
    keys = side_keys(len(names) + 1)[1:]
    return labels | {key: str(name) for key, name in zip(keys, names, strict=True)}


def _to_request(stored: dict[str, Any], judge: dict[str, Any] | None, rows: Any = None) -> EvalRequest:
    labels = _labels(stored)
    return EvalRequest(
        model=stored["model"], data=stored.get("data_path"), metrics=stored["metrics"], against=stored.get("against"),
        compare_base=stored.get("compare_base", True), probe=bool(stored.get("probe")),
        regression_set=stored.get("regression_set_path"), judge=_judge(judge),
        prompt_column=stored.get("prompt_column"), reference_column=stored.get("reference_column"),
        max_rows=int(stored.get("max_rows") or 200), max_new_tokens=int(stored.get("max_new_tokens") or 128),
        batch_size=int(stored.get("batch_size") or 8), labels=labels, rows=rows,
    )  # fmt: skip


def execute(factory: sessionmaker[Session], evaluation_id: str, *, judge: dict[str, Any] | None = None,
            rows: Any = None) -> Evaluation | None:  # fmt: skip
    """Run a queued evaluation to its end and store the result; never raises (failures are stored)."""
    def mark_running(session: Session) -> dict[str, Any] | None:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            return None
        row.status, row.started_at = "running", utcnow()
        return dict(row.request)

    stored = write_retrying(factory, mark_running, f"evaluation {evaluation_id}: marking it running")
    if stored is None:
        return None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    try:
        result = run_evaluation(_to_request(stored, judge or stored.get("judge"), rows))
    except TunelabError as exc:
        error = exc.to_dict()
    except Exception as exc:  # a bug or a broken model must still end the evaluation
        log.exception("evaluation %s failed", evaluation_id)
        error = {"code": "evaluation_failed", "message": f"{type(exc).__name__}: {exc}"[:1000],
                 "hint": "see the server log"}  # fmt: skip
    return _store_result(factory, evaluation_id, result, error)


def _store_result(factory: sessionmaker[Session], evaluation_id: str, result: dict[str, Any] | None,
                  error: dict[str, Any] | None) -> Evaluation | None:  # fmt: skip
    """Write the finished evaluation (retried: minutes of generation must not be lost to one locked moment)."""

    def store(session: Session) -> Evaluation | None:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            return None
        row.finished_at = utcnow()
        if result is not None:
            stored = dict(result)
            row.rows = stored.pop("rows")
            row.summary, row.status = stored, "completed"
            retention = stored.get("retention") or {}
            row.regression = bool(retention.get("regression")) if retention.get("base_correct") is not None else None
        else:
            row.status, row.error = "failed", error
        return row

    return write_retrying(factory, store, f"evaluation {evaluation_id}: storing the result")


def start(factory: sessionmaker[Session], evaluation_id: str, *, judge: dict[str, Any] | None = None) -> threading.Thread:
    """Run the evaluation on a background thread (the API answers with its id at once)."""
    thread = threading.Thread(target=execute, args=(factory, evaluation_id), kwargs={"judge": judge},
                              name=f"evaluation-{evaluation_id}", daemon=True)  # fmt: skip
    thread.start()
    return thread


def get(session: Session, evaluation_id: str) -> Evaluation:
    row = session.get(Evaluation, evaluation_id)
    if row is None:
        raise NotFound(f"no evaluation with id {evaluation_id!r}", "list evaluations: GET /api/evaluations")
    return row


def list_evaluations(session: Session, *, job_id: str | None = None, limit: int = 50,
                     offset: int = 0) -> tuple[list[Evaluation], int]:  # fmt: skip
    query = select(Evaluation)
    if job_id:
        query = query.where(Evaluation.job_id == job_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Evaluation.created_at.desc(), Evaluation.id).limit(limit).offset(offset))
    return list(rows), int(total)


# -- a job's automatic evaluation -------------------------------------------------------------------


def _job_rows(config: dict[str, Any]) -> list[Any]:
    """The job's eval split, exactly as the engine held it out (same seed, same rule)."""
    from tunelab.training.config import load_config_dict
    from tunelab.training.data import read_records, split_records

    train_config = load_config_dict(config)
    records = read_records(train_config.dataset, train_config.dataset_format, train_config.dataset_mapping)
    _, held_out = split_records(records, train_config)
    return rows_from_records(held_out)


#: The after-job evaluation's metrics when the job names none (``OutputConfig.eval_metrics``' default).
JOB_METRICS = ("bleu", "chrf", "rouge", "exact_match", "avg_length")
#: Values an after-job evaluation stores besides the registry's metrics, each higher-is-better:
#: the judge's mean score (1-10) and how many general-probe questions the tuned model answers right.
JOB_EXTRA_VALUES = ("judge_score", "probe_right")


def job_judge(output: dict[str, Any]) -> dict[str, Any] | None:
    """The after-job judge: URL and model from the job's ``output`` or the server's settings, the key only from settings.

    A key in a job's config would be stored with the job and shown to everyone
    who may read it, so it is never read from there.
    """
    from tunelab.settings import get_settings

    settings = get_settings()
    url = str(output.get("eval_judge_url") or settings.judge_url or "")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):  # refused by JudgeConfig: the rest of the evaluation still runs
        log.warning("judge URL %r is not an http(s) URL; the automatic evaluation runs without a judge", url)
        return None
    model = str(output.get("eval_judge_model") or settings.judge_model or "default")
    key = settings.judge_api_key.get_secret_value() or None
    return {"url": url, "model": model, "api_key": key}


def job_evaluation_values(output: dict[str, Any]) -> list[str]:
    """The names a job with this ``output`` config gets from its after-job evaluation (metrics, then extras).

    The sweep objective is checked against this before any trial runs, so a
    sweep never waits for a value its trials' evaluations cannot produce.
    """
    if not output.get("evaluate", True):
        return []
    metrics = list(output.get("eval_metrics", JOB_METRICS))
    probe = bool(output.get("eval_probe", True))
    if not (metrics or probe):
        return []
    names = parse_metrics(metrics or ["avg_length"])
    return [*names, *(["judge_score"] if job_judge(output) else []), *(["probe_right"] if probe else [])]


def job_evaluation_value(session: Session, job_id: str, name: str) -> tuple[str, float | None, str | None]:
    """``(state, value, message)`` of ``name`` in the job's after-job evaluation, for the tuned model.

    ``state`` is ``pending`` (no evaluation yet, or still running), ``done`` or
    ``failed`` (the evaluation failed, or it holds no such value: a judge that
    scored no row gives no ``judge_score``).
    """
    row = session.scalars(select(Evaluation).where(Evaluation.job_id == job_id, Evaluation.source == "job")
                          .order_by(Evaluation.created_at.desc())).first()  # fmt: skip
    if row is None or row.status in ("queued", "running"):
        return "pending", None, None
    if row.status != "completed":
        return "failed", None, f"the job's evaluation {row.id} failed: {(row.error or {}).get('message', '')}"
    summary = row.summary or {}
    if name == "probe_right":
        value = (summary.get("retention") or {}).get("tuned_correct")
    else:
        value = ((summary.get("summary") or {}).get("model") or {}).get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "failed", None, f"the job's evaluation {row.id} has no `{name}` for the tuned model"
    return "done", float(value), None


def evaluate_job(factory: sessionmaker[Session], job_id: str, run_dir: Path) -> Evaluation | None:
    """After a completed job: metrics on its eval split and the retention probe, base against tuned.

    Configured by the job's ``output.eval_metrics`` / ``eval_probe`` /
    ``eval_metric_rows`` and the judge of ``job_judge`` (rows it cannot grade
    record why; the evaluation and the job go on); a regression sets ``jobs.regression`` and adds a
    ``retention_regression`` event. A job whose task writes no text
    (classification, regression: ``TaskSpec.generates``) has nothing for BLEU
    or the causal probe to read; its own metrics (accuracy, macro F1, confusion
    matrix / MAE, RMSE, base against tuned) were measured by the engine, so it
    gets an ``evaluation_skipped`` event carrying them instead of a
    generation run. Never raises: whatever fails is stored on the evaluation
    (or logged) and the job stays completed.
    """
    from tunelab.evaluation.exports import write_job_results
    from tunelab.jobs.events import add_event

    try:
        config = json.loads((run_dir / "config.json").read_text())
        output = config.get("output") or {}
        metrics = list(output.get("eval_metrics", JOB_METRICS))
        probe = bool(output.get("eval_probe", True))
        if not output.get("evaluate", True) or not (metrics or probe) or not (run_dir / "output").is_dir():
            return None
        task = _job_task(config, run_dir)
        if not task.generates:
            _skip_task(factory, add_event, job_id, run_dir, task)
            return None
        judge = job_judge(output)
        request = {"model": str(run_dir), "model_name": job_id, "dataset": config.get("dataset"),
                   "metrics": metrics or ["avg_length"], "probe": probe, "compare_base": True,
                   "max_rows": int(output.get("eval_metric_rows", 50)),
                   "max_new_tokens": int(output.get("max_new_tokens", 64)), "batch_size": 16, "judge": judge}  # fmt: skip
        with factory() as session:
            row = create(session, request, name=f"{job_id} (after training)", source="job", job_id=job_id)
            evaluation_id = row.id
        try:
            rows = _job_rows(config)
        except TunelabError:
            rows = []
        done = execute(factory, evaluation_id, rows=rows, judge=judge)
        if done is None:
            return None
        def record(session: Session) -> None:
            job = session.get(Job, job_id)
            if job is not None and done.regression is not None:
                job.regression = done.regression
            if job is not None:
                _job_event(session, add_event, job_id, done)
                session.flush()
                write_job_results(session, job)

        write_retrying(factory, record, f"job {job_id}: recording its evaluation")
        return done
    except Exception:
        log.exception("automatic evaluation of job %s failed", job_id)
        return None


def _job_task(config: dict[str, Any], run_dir: Path) -> Any:
    """The job's resolved task (``TaskSpec``): config.json's ``task`` (the engine writes it resolved).

    An unresolved ``auto`` is read from the model; a model that cannot be read counts
    as a causal LM, which evaluates as before this check existed.
    """
    from tunelab.training.tasks import TASKS, resolve_task

    requested = str(config.get("task") or "auto")
    if requested == "auto":
        try:
            requested = resolve_task(requested, str(config.get("model") or run_dir / "output"))
        except Exception:  # a missing or unreadable model: the evaluation itself will say so
            requested = "causal_lm"
    return TASKS.get(requested, TASKS["causal_lm"])


def _skip_task(factory: sessionmaker[Session], add_event: Any, job_id: str, run_dir: Path, task: Any) -> None:
    """The ``evaluation_skipped`` event of a non-generating task, with the engine's metrics for that task."""
    import time

    path = run_dir / "output" / "evaluation.json"
    measured = json.loads(path.read_text()) if path.is_file() else {}
    picked = {side: {k: v for k, v in (measured.get(side) or {}).items() if k in task.metrics}
              for side in ("base", "tuned") if measured.get(side)}  # fmt: skip
    names = ", ".join(m for m in task.metrics if m != "eval_loss")
    tuned = picked.get("tuned") or {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in tuned.items() if isinstance(v, int | float))
    message = (f"automatic evaluation skipped: a {task.name} model writes no text, so generation metrics and the "
               f"retention probe do not apply; its {names} are the engine's (output/evaluation.json)"
               + (f": tuned {shown}" if shown else ""))  # fmt: skip
    with factory() as session:
        add_event(session, job_id, "event", {"time": time.time(), "type": "evaluation_skipped", "message": message,
                                             "data": {"task": task.name, "metrics": picked}})  # fmt: skip
        session.commit()


def _job_event(session: Session, add_event: Any, job_id: str, done: Evaluation) -> None:
    import time

    retention = (done.summary or {}).get("retention") or {}
    if done.status != "completed":
        message = f"automatic evaluation failed: {(done.error or {}).get('message', '')}"
        add_event(session, job_id, "event", {"time": time.time(), "type": "evaluation_failed", "message": message,
                                             "data": {"evaluation_id": done.id, "error": done.error}})  # fmt: skip
        return
    add_event(session, job_id, "event", {"time": time.time(), "type": "evaluation", "message":
              f"evaluation {done.id}: {json.dumps((done.summary or {}).get('summary', {}).get('model', {}))}",
              "data": {"evaluation_id": done.id}})  # fmt: skip
    if done.regression:
        lost = [item["question"] for item in retention.get("lost", [])]
        add_event(session, job_id, "event", {
            "time": time.time(), "type": "retention_regression",
            "message": f"the tuned model answers {retention.get('tuned_correct')} of {retention.get('size')} probe "
                       f"questions right, the base {retention.get('base_correct')}; lost: {'; '.join(lost[:5])}",
            "data": {"evaluation_id": done.id, "lost": lost},
        })  # fmt: skip


def evaluate_job_async(factory: sessionmaker[Session], job_id: str, run_dir: Path) -> threading.Thread:
    """``evaluate_job`` on a daemon thread, so the worker goes on to its next job meanwhile."""
    thread = threading.Thread(target=evaluate_job, args=(factory, job_id, run_dir),
                              name=f"job-evaluation-{job_id}", daemon=True)  # fmt: skip
    thread.start()
    return thread

