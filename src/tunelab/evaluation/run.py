"""Run an evaluation: generate with one or two models, score, judge, and check retention.

This is the one evaluation runner; the CLI (in the foreground), the API (in a
background thread) and the worker (after each completed job) all call
``run_evaluation`` and differ only in where the request comes from and where
the result is kept. Models load through ``tunelab.models.loading`` (anything
``locate`` takes: a built-in id, a job's run directory, an adapter folder, an
exported model), prompts render through the engine's ``render_prompt`` and
replies come from the model runtime's batched ``generate`` (greedy, so two
runs of the same evaluation give the same text). One model is in memory at a
time: each side loads after the one before is dropped, so comparing N models
side by side (``against`` several) costs N loads, never N models of memory.
Sides are keyed ``model``, ``against``, ``against_2``, ... (``side_keys``); the
result's ``sides`` maps each key to its label, and ratings name sides by key.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.evaluation.judge import JudgeConfig, judge_rows, summarize
from tunelab.evaluation.metrics import METRICS, parse_metrics, score_texts
from tunelab.evaluation.retention import GENERAL_PROBE, compare, load_probe
from tunelab.evaluation.rows import EvalRow, load_rows

SIDES = ("model", "against")
MAX_AGAINST = 8  # models compared beside ``model`` in one evaluation


def side_keys(count: int) -> list[str]:
    """Keys of ``count`` sides in order: ``model``, ``against``, ``against_2``, ``against_3`` ..."""
    return [*SIDES, *(f"against_{i}" for i in range(2, count))][:count]


@dataclass
class EvalRequest:
    """What to evaluate. ``model`` and ``against`` are loadable locations (``models.loading.locate``)."""

    model: str
    data: str | None = None
    metrics: list[str] = field(default_factory=lambda: parse_metrics(None))
    against: str | list[str] | None = None  # one or several models, each its own side
    compare_base: bool = True  # without ``against``: compare an adapter with its own base model
    probe: bool = False
    regression_set: str | None = None  # a dataset file used as the probe instead of the shipped one
    judge: JudgeConfig | None = None
    prompt_column: str | None = None
    reference_column: str | None = None
    max_rows: int = 200
    max_new_tokens: int = 128
    probe_max_new_tokens: int = 32  # probe answers are short; a longer ramble is no more right
    batch_size: int = 8
    labels: dict[str, str] = field(default_factory=dict)
    rows: list[EvalRow] | None = None  # rows already loaded (a job's eval split)


def base_of(location: str) -> tuple[str, bool] | None:
    """How to load the base of ``location``: (location, True) for an adapter (load it without the
    adapter), (the run's configured model, False) for a full fine-tune's run directory, None otherwise."""
    import json

    from tunelab.models.loading import locate

    if location.startswith("ens:{"):  # an ensemble has no one base; compare it with its members instead
        return None
    parts = locate(location, progress=False)
    if parts.adapter is not None:
        return location, True
    config = Path(location) / "config.json"
    if (Path(location) / "output").is_dir() and config.exists():
        named = json.loads(config.read_text()).get("model")
        return (named, False) if isinstance(named, str) else None
    return None


def _load(location: str, base_only: bool = False) -> tuple[Any, Any]:
    from tunelab.models.loading import ModelParts, load_parts, locate

    if location.startswith("ens:{"):  # several models as one (``serving.ensembles``)
        from tunelab.serving.ensemble_model import load_ensemble

        return load_ensemble(location)
    parts = locate(location, progress=False)
    if base_only:
        parts = ModelParts(parts.base, None, parts.base)
    return load_parts(parts)


def _generate(model: Any, tokenizer: Any, rows: list[EvalRow], request: EvalRequest,
              max_new_tokens: int | None = None) -> tuple[list[str], int]:  # fmt: skip
    """Greedy replies to every row, ``batch_size`` at a time; (texts, generated tokens)."""
    from tunelab.models.generation import Sampling, generate
    from tunelab.training.encoding import render_prompt

    prompts = [render_prompt(tokenizer, row.messages) for row in rows]
    limit = max_new_tokens or request.max_new_tokens
    done = generate(model, tokenizer, prompts, Sampling(max_new_tokens=limit, temperature=0.0),
                    batch_size=request.batch_size)  # fmt: skip
    return [c.text for c in done], sum(c.completion_tokens for c in done)


def _side(location: str, rows: list[EvalRow], probe: list[EvalRow], request: EvalRequest,
          base_only: bool) -> dict[str, Any]:  # fmt: skip
    """Everything one model produces: replies, probe answers, logit metrics, timings."""
    from tunelab.evaluation.logits import measure_logits

    started = time.perf_counter()
    model, tokenizer = _load(location, base_only)
    loaded = time.perf_counter()
    replies, tokens = _generate(model, tokenizer, rows, request) if rows else ([], 0)
    probe_limit = min(request.max_new_tokens, request.probe_max_new_tokens) if not request.regression_set else None
    answers, probe_tokens = _generate(model, tokenizer, probe, request, probe_limit) if probe else ([], 0)
    generated = time.perf_counter()
    logit_totals: dict[str, float] = {}
    logit_rows: list[dict[str, float]] = [{} for _ in rows]
    if rows and any(METRICS[m].needs == "logits" for m in request.metrics):
        logit_totals, logit_rows = measure_logits(model, tokenizer, rows, batch_size=request.batch_size)
    del model, tokenizer
    gc.collect()
    timing = {"load_s": round(loaded - started, 3), "generate_s": round(generated - loaded, 3),
              "generated_tokens": tokens + probe_tokens,
              "tokens_per_s": round((tokens + probe_tokens) / max(generated - loaded, 1e-9), 2)}  # fmt: skip
    return {"replies": replies, "answers": answers, "logits": (logit_totals, logit_rows), "timing": timing}


def _score(side: dict[str, Any], rows: list[EvalRow], request: EvalRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    totals, per_row = score_texts(request.metrics, side["replies"], [r.reference for r in rows])
    logit_totals, logit_rows = side["logits"]
    wanted = set(request.metrics)
    totals.update({k: v for k, v in logit_totals.items() if k in wanted or k == "eval_tokens"})
    for row, extra in zip(per_row, logit_rows, strict=False):
        row.update({k: v for k, v in extra.items() if k in wanted})
    return totals, per_row


def _probe_rows(request: EvalRequest) -> tuple[list[EvalRow], str]:
    if request.regression_set:
        return load_rows(request.regression_set, prompt_column=request.prompt_column,
                         reference_column=request.reference_column), Path(request.regression_set).name  # fmt: skip
    if request.probe:
        return load_probe(GENERAL_PROBE), "general"
    return [], ""


def _plan(request: EvalRequest) -> list[tuple[str, str, bool]]:
    """(side key, location, load the base only) per side: the model, then each ``against`` in order,
    or without one the base of an adapter or job (labelled ``base``)."""
    against = [request.against] if isinstance(request.against, str) else list(request.against or [])
    if len(against) > MAX_AGAINST:
        from tunelab.errors import InvalidInput

        raise InvalidInput(f"{len(against)} models to compare against; at most {MAX_AGAINST} fit one evaluation",
                           "split them over several evaluations")  # fmt: skip
    plan = [("model", request.model, False)]
    if not against and request.compare_base:
        base = base_of(request.model)
        if base is not None:
            request.labels.setdefault("against", "base")
            return [*plan, ("against", base[0], base[1])]
    keys = side_keys(len(against) + 1)
    return plan + [(key, location, False) for key, location in zip(keys[1:], against, strict=True)]


def run_evaluation(request: EvalRequest, *, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The evaluation document: per-side metrics, per-row generations and scores, judge, retention."""
    request.metrics = parse_metrics(request.metrics)
    if request.rows is not None:
        rows = request.rows[: request.max_rows]
    elif request.data:
        rows = load_rows(request.data, prompt_column=request.prompt_column,
                         reference_column=request.reference_column, limit=request.max_rows)  # fmt: skip
    else:
        rows = []
    probe, probe_name = _probe_rows(request)
    plan = _plan(request)
    sides: dict[str, dict[str, Any]] = {}
    for name, location, only_base in plan:
        progress(f"generating with {name}")
        sides[name] = _side(location, rows, probe, request, only_base)
    summary: dict[str, Any] = {}
    out_rows: list[dict[str, Any]] = [
        {"index": i, "prompt": r.prompt, "reference": r.reference, "outputs": {}, "scores": {}} for i, r in enumerate(rows)
    ]
    for name, side in sides.items():
        totals, per_row = _score(side, rows, request)
        summary[name] = totals
        for row, reply, scores in zip(out_rows, side["replies"], per_row, strict=True):
            row["outputs"][name], row["scores"][name] = reply, scores
    judged = _judge(request, rows, sides, out_rows, summary, progress) if request.judge and rows else None
    retention = None
    if probe:
        base_answers = sides["against"]["answers"] if "against" in sides else None
        retention = compare(probe, base_answers, sides["model"]["answers"], name=probe_name)
    labels = {name: request.labels.get(name, location) for name, location, _ in plan}
    return {
        "model": labels["model"], "against": labels.get("against"), "sides": labels,
        "metrics": request.metrics, "rows_evaluated": len(rows), "summary": summary, "rows": out_rows,
        "judge": judged, "retention": retention, "timing": {n: s["timing"] for n, s in sides.items()},
    }  # fmt: skip


def _judge(request: EvalRequest, rows: list[EvalRow], sides: dict[str, dict[str, Any]], out_rows: list[dict[str, Any]],
           summary: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Grade every reply of every side; failures stay in their rows (never raised)."""
    assert request.judge is not None
    judged: dict[str, Any] = {"url": request.judge.url, "model": request.judge.model}
    for name, side in sides.items():
        progress(f"judging {name}")
        results = judge_rows(request.judge, [(r.prompt, r.reference, t) for r, t in zip(rows, side["replies"], strict=True)])
        for row, result in zip(out_rows, results, strict=True):
            row.setdefault("judge", {})[name] = result
        judged[name] = summarize(results)
        if judged[name]["judge_score"] is not None:
            summary[name]["judge_score"] = judged[name]["judge_score"]
    return judged
