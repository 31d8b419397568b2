"""Evaluations and results export: ``/api/evaluations`` and a job's metrics, evaluation and charts as files.

Thin over ``tunelab.evaluation.service`` (create, run in the background, list,
show) and ``tunelab.evaluation.exports`` (CSV, JSON, SVG). ``POST`` answers 202
with the queued evaluation at once; poll ``GET /api/evaluations/{id}`` until
``status`` is ``completed`` or ``failed``. Models are names (collection
entries, job ids, built-in ids) and datasets are stored datasets, as
everywhere in the API; a server path only for an admin inside
``TUNELAB_ALLOW_SERVER_PATHS``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from tunelab.api.deps import ReadScope, ServerPaths, SessionDep, SettingsDep, TrainScope
from tunelab.api.schemas import Offset, Strict
from tunelab.errors import InvalidInput
from tunelab.evaluation import exports, service
from tunelab.jobs import datasets
from tunelab.jobs.names import check_name, check_text
from tunelab.serving.registry import chat_location

router = APIRouter(prefix="/api", tags=["evaluations"])
_Name = Annotated[str, Field(min_length=1, max_length=500)]
_Column = Annotated[str, Field(min_length=1, max_length=200)]


class JudgeBody(Strict):
    """An OpenAI-compatible chat endpoint that grades each reply 1-10 with a rationale."""

    url: str = Field(min_length=1, max_length=2000, description="Base URL (`http://host:port/v1`) or the full "
                     "`.../chat/completions` URL.", examples=["http://127.0.0.1:8001/v1"])
    model: str = Field("default", min_length=1, max_length=500, description="The judge's model name.")
    rubric: str | None = Field(None, max_length=8000, description="Grading instructions (default: correctness "
                               "and usefulness against the reference).")
    api_key: str | None = Field(None, max_length=1000, description="Bearer token for the judge; never stored.")
    timeout_s: float = Field(60.0, ge=1, le=600, description="Seconds per judged row.")


class EvaluationCreate(Strict):
    """What to evaluate, on what, with which metrics."""

    model: _Name = Field(description="Collection entry, job id or built-in id.", examples=["smollm2-135m-instruct"])
    against: _Name | Annotated[list[_Name], Field(min_length=1, max_length=8)] | None = Field(
        None, description="Another model to compare with, or a list of up to 8 (each its own side: `against`, "
        "`against_2`, ...); default: the model's base when it is an adapter or a job's output.")
    compare_base: bool = Field(True, description="Without `against`, compare an adapter or job with its base.")
    data: _Name | None = Field(None, description="Stored dataset (id, name or version id) to score generations on.")
    metrics: list[_Column] | None = Field(None, max_length=20, description="Metric names or groups (GET /api/meta "
                                          "`metrics`, `metric_groups`); default `default_metrics`.")
    probe: bool = Field(True, description="Ask the shipped general-ability probe and report retention.")
    regression_set: _Name | None = Field(None, description="A stored dataset used as the retention probe instead.")
    prompt_column: _Column | None = Field(None, description="Column holding the prompt (for files in no known format).")
    reference_column: _Column | None = Field(None, description="Column holding the reference reply.")
    judge: JudgeBody | None = Field(None, description="Optional LLM judge.")
    max_rows: int = Field(200, ge=1, le=5000, description="At most this many dataset rows.")
    max_new_tokens: int = Field(128, ge=1, le=1024, description="Tokens generated per reply.")
    name: str = Field("", max_length=200, description="Label for the list.")


class EvaluationPublic(BaseModel):
    """One evaluation; `rows` only in GET /api/evaluations/{id}."""

    id: str
    name: str
    status: str = Field(description="queued, running, completed or failed.")
    source: str = Field(description="api, cli or job (the automatic evaluation after a job).")
    job_id: str | None
    model: str
    against: str | None
    dataset: str | None
    request: dict[str, Any]
    summary: dict[str, Any] = Field(description="`summary` (metrics per side), `retention`, `judge`, `timing`.")
    regression: bool | None = Field(description="True when the model answers fewer probe questions than the base.")
    error: dict[str, Any] | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    rows: list[dict[str, Any]] | None = Field(None, description="Per row: prompt, reference, outputs, scores, judge.")


class EvaluationsPublic(BaseModel):
    data: list[EvaluationPublic]
    count: int


def _request(body: EvaluationCreate, session: Any, settings: Any, paths: Any) -> dict[str, Any]:
    if not (body.data or body.probe or body.regression_set):
        raise InvalidInput("nothing to evaluate on", "give `data`, `probe: true` or `regression_set`")
    request: dict[str, Any] = {
        "model": chat_location(session, settings, body.model), "model_name": body.model,
        "compare_base": body.compare_base, "probe": body.probe and not body.regression_set,
        "metrics": body.metrics, "prompt_column": body.prompt_column, "reference_column": body.reference_column,
        "max_rows": body.max_rows, "max_new_tokens": body.max_new_tokens, "dataset": body.data,
    }  # fmt: skip
    if isinstance(body.against, str):
        request["against"], request["against_name"] = chat_location(session, settings, body.against), body.against
    elif body.against:
        request["against"] = [chat_location(session, settings, name) for name in body.against]
        request["against_name"] = list(body.against)
    if body.data:
        request["data_path"] = datasets.resolve(session, body.data, settings=settings, paths=paths, field="data")
    if body.regression_set:
        request["regression_set_path"] = datasets.resolve(session, body.regression_set, settings=settings,
                                                          paths=paths, field="regression_set")  # fmt: skip
    if body.judge:
        request["judge"] = body.judge.model_dump(exclude_none=True)
    return request


@router.post("/evaluations", status_code=202, response_model=EvaluationPublic,
             summary="Evaluate a model (runs in the background; poll GET /api/evaluations/{id})")
def create_evaluation(body: EvaluationCreate, request: Request, session: SessionDep, settings: SettingsDep,
                      paths: ServerPaths, _: TrainScope) -> dict[str, Any]:  # fmt: skip
    check_name(body.name, "name")
    check_text(body.judge.rubric if body.judge else None, "judge.rubric")
    spec = _request(body, session, settings, paths)
    row = service.create(session, spec, name=body.name)
    service.start(request.app.state.sessions, row.id, judge=spec.get("judge"))
    return row.to_dict()


@router.get("/evaluations", response_model=EvaluationsPublic, summary="List evaluations (newest first)")
def list_evaluations(
    session: SessionDep,
    _: ReadScope,
    job_id: Annotated[str | None, Query(max_length=64, description="Only this job's evaluations.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows, total = service.list_evaluations(session, job_id=job_id, limit=limit, offset=offset)
    return {"data": [row.to_dict() for row in rows], "count": total}


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationPublic,
            summary="One evaluation with its per-row generations and scores")
def get_evaluation(evaluation_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return service.get(session, evaluation_id).to_dict(rows=True)


_SVG = {200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "An SVG image."}}
_CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, one row per step."}}


@router.get("/evaluations/{evaluation_id}/chart.svg", response_class=Response, responses=_SVG,  # type: ignore[arg-type]
            summary="The evaluation's metrics per side as an SVG bar chart")
def evaluation_chart(evaluation_id: str, session: SessionDep, _: ReadScope) -> Response:
    return Response(exports.evaluation_chart(service.get(session, evaluation_id)), media_type="image/svg+xml")


@router.get("/jobs/{job_id}/metrics.csv", response_class=Response, responses=_CSV,  # type: ignore[arg-type]
            summary="Download a job's logged metrics as CSV")
def job_metrics_csv(job_id: str, session: SessionDep, _: ReadScope) -> Response:
    return Response(exports.metrics_csv(session, job_id), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{job_id}-metrics.csv"'})  # fmt: skip


@router.get("/jobs/{job_id}/metrics.json", summary="Download a job's metrics, final values and evaluation as JSON")
def job_metrics_json(job_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return exports.metrics_json(session, job_id)


@router.get("/jobs/{job_id}/charts/loss.svg", response_class=Response, responses=_SVG,  # type: ignore[arg-type]
            summary="A job's loss and eval-loss curves as SVG")
def job_loss_chart(job_id: str, session: SessionDep, _: ReadScope) -> Response:
    return Response(exports.loss_chart(session, job_id), media_type="image/svg+xml")
