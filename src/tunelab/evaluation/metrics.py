"""Generation metrics and their registry: the one list of metric names.

Each metric scores generated texts against references and gives a corpus
score plus one score per row, so the dashboard can show which rows a number
comes from. The text metrics are the libraries' own (sacrebleu's BLEU and
chrF, Google's rouge-score ROUGE-1/2/L F-measure), called with their defaults,
so a number here equals the one a user gets from the library on the same
strings. Metrics that need the model's logits (token accuracy, eval loss,
perplexity) are listed here too but measured in ``tunelab.evaluation.logits``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.errors import InvalidInput


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it measures, what it needs, and whether higher is better."""

    name: str
    description: str
    needs: str  # "generations" (texts against references) or "logits" (a forward pass over the reference)
    higher_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "needs": self.needs,
                "higher_is_better": self.higher_is_better}  # fmt: skip


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("bleu", "sacrebleu corpus BLEU (0-100)", "generations"),
    MetricSpec("chrf", "sacrebleu corpus chrF (0-100)", "generations"),
    MetricSpec("rouge1", "ROUGE-1 F-measure, mean over rows (0-100, rouge-score, stemmed)", "generations"),
    MetricSpec("rouge2", "ROUGE-2 F-measure, mean over rows (0-100, rouge-score, stemmed)", "generations"),
    MetricSpec("rougeL", "ROUGE-L F-measure, mean over rows (0-100, rouge-score, stemmed)", "generations"),
    MetricSpec("exact_match", "share of replies equal to the reference after normalising case, "
               "punctuation and spaces (0-100)", "generations"),
    MetricSpec("avg_length", "mean reply length in words", "generations", higher_is_better=False),
    MetricSpec("token_accuracy", "share of reference tokens the model predicts as its top token, "
               "teacher-forced (0-100)", "logits"),
    MetricSpec("eval_loss", "mean cross-entropy per reference token, teacher-forced", "logits",
               higher_is_better=False),
    MetricSpec("perplexity", "exp(eval_loss)", "logits", higher_is_better=False),
)}  # fmt: skip

#: Names that stand for several metrics.
GROUPS: dict[str, tuple[str, ...]] = {
    "rouge": ("rouge1", "rouge2", "rougeL"),
    "loss": ("eval_loss", "perplexity"),
    "all": tuple(METRICS),
}
DEFAULT_METRICS: tuple[str, ...] = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "avg_length")


def parse_metrics(names: str | Sequence[str] | None) -> list[str]:
    """Metric names (comma-separated or a list, groups expanded) in registry order; unknown ones refused."""
    if names is None:
        return list(DEFAULT_METRICS)
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    items = [n for n in items if n]
    if not items:
        raise InvalidInput("no metric named", hint=f"name one or more of: {', '.join([*METRICS, *GROUPS])}")
    chosen: set[str] = set()
    unknown = []
    for name in items:
        if name in GROUPS:
            chosen.update(GROUPS[name])
        elif name in METRICS:
            chosen.add(name)
        else:
            unknown.append(name)
    if unknown:
        raise InvalidInput(
            f"unknown metric {', '.join(repr(n) for n in unknown)}",
            hint=f"known metrics: {', '.join(METRICS)}; groups: {', '.join(GROUPS)}",
            code="unknown_metric",
            details={"unknown": unknown, "known": list(METRICS), "groups": list(GROUPS)},
        )
    return [name for name in METRICS if name in chosen]


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: the SQuAD normalisation for exact match."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _bleu(hyps: list[str], refs: list[str]) -> tuple[float, list[float]]:
    import sacrebleu

    rows = [sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
    return sacrebleu.corpus_bleu(hyps, [refs]).score, rows


def _chrf(hyps: list[str], refs: list[str]) -> tuple[float, list[float]]:
    import sacrebleu

    rows = [sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
    return sacrebleu.corpus_chrf(hyps, [refs]).score, rows


def _rouge(kind: str) -> Callable[[list[str], list[str]], tuple[float, list[float]]]:
    def score(hyps: list[str], refs: list[str]) -> tuple[float, list[float]]:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        rows = [100 * scorer.score(r, h)[kind].fmeasure for h, r in zip(hyps, refs, strict=True)]
        return (sum(rows) / len(rows) if rows else 0.0), rows

    return score


def _exact(hyps: list[str], refs: list[str]) -> tuple[float, list[float]]:
    rows = [100.0 * (normalize_answer(h) == normalize_answer(r)) for h, r in zip(hyps, refs, strict=True)]
    return (sum(rows) / len(rows) if rows else 0.0), rows


def _length(hyps: list[str], refs: list[str]) -> tuple[float, list[float]]:
    rows = [float(len(h.split())) for h in hyps]
    return (sum(rows) / len(rows) if rows else 0.0), rows


_TEXT_SCORERS: dict[str, Callable[[list[str], list[str]], tuple[float, list[float]]]] = {
    "bleu": _bleu, "chrf": _chrf, "rouge1": _rouge("rouge1"), "rouge2": _rouge("rouge2"),
    "rougeL": _rouge("rougeL"), "exact_match": _exact, "avg_length": _length,
}  # fmt: skip


def score_texts(metrics: Sequence[str], hypotheses: Sequence[str], references: Sequence[str]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(corpus score per metric, per-row scores) for the generation metrics among ``metrics``."""
    hyps, refs = list(hypotheses), list(references)
    if len(hyps) != len(refs):
        raise InvalidInput(f"{len(hyps)} generations for {len(refs)} references", hint="give one reference per row")
    totals: dict[str, float] = {}
    rows: list[dict[str, float]] = [{} for _ in hyps]
    for name in metrics:
        scorer = _TEXT_SCORERS.get(name)
        if scorer is None or not hyps:
            continue
        total, per_row = scorer(hyps, refs)
        totals[name] = round(float(total), 4)
        for row, value in zip(rows, per_row, strict=True):
            row[name] = round(float(value), 4)
    return totals, rows


def metric_names() -> list[dict[str, Any]]:
    """The registry as data, for ``GET /api/meta`` and ``tunelab eval --help``."""
    return [spec.to_dict() for spec in METRICS.values()]
