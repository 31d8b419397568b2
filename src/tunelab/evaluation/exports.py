"""Results export: a job's metrics as CSV and JSON, its evaluation, and its charts as SVG.

What the dashboard shows live, in files a user keeps: every logged step (the
store's ``metrics`` rows, the engine's extra fields flattened into columns),
the job's final numbers, the engine's base-versus-tuned ``evaluation.json``
and the latest stored evaluation, and a loss / eval-loss chart. The routes
serve them for download (``GET /api/jobs/{id}/metrics.csv`` ...); ``write_job_results``
also saves them under the run's ``results/`` as job artifacts.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.evaluation.charts import bar_chart, line_chart
from tunelab.store.models import Artifact, Evaluation, Job

BASE_COLUMNS = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second",
                "progress", "eta_s")  # fmt: skip


def metric_rows(session: Session, job_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one dict per logged step): the table columns first, then the engine's extra fields."""
    from tunelab.jobs.service import get_job, list_metrics

    get_job(session, job_id)
    rows, extra = [], {}
    for metric in list_metrics(session, job_id):
        row = {column: getattr(metric, column) for column in BASE_COLUMNS}
        for key, value in (metric.data or {}).items():
            if key not in row and isinstance(value, int | float | str | bool | None):
                row[key] = value
                extra[key] = None
        rows.append(row)
    return [*BASE_COLUMNS, *extra], rows


def metrics_csv(session: Session, job_id: str) -> str:
    columns, rows = metric_rows(session, job_id)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def latest_evaluation(session: Session, job_id: str) -> Evaluation | None:
    query = select(Evaluation).where(Evaluation.job_id == job_id).order_by(Evaluation.created_at.desc())
    return session.scalars(query.limit(1)).first()


def metrics_json(session: Session, job_id: str) -> dict[str, Any]:
    """Steps, final values, the engine's evaluation.json and the latest stored evaluation of the job."""
    from tunelab.jobs.service import get_job

    job = get_job(session, job_id)
    columns, rows = metric_rows(session, job_id)
    final = {}
    for row in rows:
        final.update({k: v for k, v in row.items() if v is not None and k != "step"})
    engine_eval = None
    if job.run_dir and (Path(job.run_dir) / "output" / "evaluation.json").is_file():
        engine_eval = json.loads((Path(job.run_dir) / "output" / "evaluation.json").read_text())
    evaluation = latest_evaluation(session, job_id)
    return {"job_id": job.id, "name": job.name, "status": job.status, "regression": job.regression,
            "columns": columns, "steps": rows, "final": final, "engine_evaluation": engine_eval,
            "evaluation": evaluation.to_dict(rows=True) if evaluation is not None else None}  # fmt: skip


def loss_chart(session: Session, job_id: str) -> str:
    _, rows = metric_rows(session, job_id)
    series = {name: [(float(r["step"]), float(r[name])) for r in rows if isinstance(r.get(name), int | float)]
              for name in ("loss", "eval_loss")}  # fmt: skip
    return line_chart(f"job {job_id}: loss", series)


def evaluation_chart(evaluation: Evaluation) -> str:
    """Bars of every 0-100 metric per side (base and tuned, or the two models)."""
    summary = (evaluation.summary or {}).get("summary") or {}
    labels = {"model": str((evaluation.summary or {}).get("model") or "model"),
              "against": str((evaluation.summary or {}).get("against") or "against")}  # fmt: skip
    labels |= {side: str(label) for side, label in ((evaluation.summary or {}).get("sides") or {}).items()}
    if len(set(labels.values())) < len(labels):  # the same model on two sides: tell the bars apart
        labels = {side: f"{label} ({side})" for side, label in labels.items()}
    hundred = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "token_accuracy")
    groups = {labels[side]: {k: float(v) for k, v in scores.items() if k in hundred}
              for side, scores in summary.items()}  # fmt: skip
    return bar_chart(f"evaluation {evaluation.id}", groups)


def write_job_results(session: Session, job: Job) -> list[Path]:
    """Save metrics.csv, metrics.json and loss.svg under RUN_DIR/results/ and register them as artifacts."""
    if not job.run_dir:
        return []
    folder = Path(job.run_dir) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"metrics.csv": metrics_csv(session, job.id),
             "metrics.json": json.dumps(metrics_json(session, job.id), indent=2, default=str),
             "loss.svg": loss_chart(session, job.id)}  # fmt: skip
    evaluation = latest_evaluation(session, job.id)
    if evaluation is not None and evaluation.status == "completed":
        files["evaluation.svg"] = evaluation_chart(evaluation)
    known = {a.path: a for a in session.scalars(select(Artifact).where(Artifact.job_id == job.id))}
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        relative = f"results/{name}"
        if relative in known:
            known[relative].size = path.stat().st_size
        else:
            session.add(Artifact(job_id=job.id, kind="results", path=relative, size=path.stat().st_size))
        written.append(path)
    return written
