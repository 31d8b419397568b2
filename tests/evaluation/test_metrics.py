"""Metric values equal what sacrebleu and rouge-score compute on the same strings; names are checked."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from tunelab.errors import InvalidInput
from tunelab.evaluation.metrics import (
    DEFAULT_METRICS,
    METRICS,
    normalize_answer,
    parse_metrics,
    score_texts,
)

HYPS = ["The capital of France is Paris.", "I am Tuna, an assistant.", "two plus two is four", ""]
REFS = ["Paris is the capital of France.", "I am Tuna, a tunelab AI assistant.", "Two plus two is four.", "nothing"]


def test_bleu_and_chrf_equal_sacrebleu() -> None:
    totals, rows = score_texts(["bleu", "chrf"], HYPS, REFS)
    assert totals["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-4)
    assert totals["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score, abs=1e-4)
    for row, h, r in zip(rows, HYPS, REFS, strict=True):
        assert row["bleu"] == pytest.approx(sacrebleu.sentence_bleu(h, [r]).score, abs=1e-4)
        assert row["chrf"] == pytest.approx(sacrebleu.sentence_chrf(h, [r]).score, abs=1e-4)
    assert 0 < totals["bleu"] < 100


def test_rouge_equals_rouge_score_mean_f_measure() -> None:
    totals, rows = score_texts(["rouge1", "rouge2", "rougeL"], HYPS, REFS)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = [scorer.score(r, h) for h, r in zip(HYPS, REFS, strict=True)]
    for kind in ("rouge1", "rouge2", "rougeL"):
        expected = [100 * d[kind].fmeasure for d in direct]
        assert totals[kind] == pytest.approx(sum(expected) / len(expected), abs=1e-3)
        assert [row[kind] for row in rows] == pytest.approx(expected, abs=1e-3)
    assert totals["rouge1"] > totals["rouge2"] > 0


def test_exact_match_normalises_case_punctuation_and_articles() -> None:
    totals, rows = score_texts(["exact_match", "avg_length"], ["The Paris!", "paris", "Lyon"], ["paris", "Paris.", "Paris"])
    assert [row["exact_match"] for row in rows] == [100.0, 100.0, 0.0]
    assert totals["exact_match"] == pytest.approx(200 / 3, abs=1e-3)
    assert totals["avg_length"] == pytest.approx(4 / 3, abs=1e-3)
    assert normalize_answer("  The  Answer, is: 42! ") == "answer is 42"


def test_parse_metrics_expands_groups_and_keeps_registry_order() -> None:
    assert parse_metrics("rouge,bleu") == ["bleu", "rouge1", "rouge2", "rougeL"]
    assert parse_metrics(["loss"]) == ["eval_loss", "perplexity"]
    assert parse_metrics(None) == list(DEFAULT_METRICS)
    assert parse_metrics("all") == list(METRICS)


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_metrics("bleu,blue,rogue")
    error = caught.value
    assert error.code == "unknown_metric"
    assert "'blue'" in error.message and "'rogue'" in error.message
    for name in ("bleu", "chrf", "rougeL", "exact_match", "token_accuracy", "perplexity"):
        assert name in error.hint
    assert error.details["known"] == list(METRICS)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(InvalidInput):
        score_texts(["bleu"], ["a", "b"], ["a"])
