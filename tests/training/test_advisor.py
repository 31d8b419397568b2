"""The fine-tuning-or-RAG advisor: the lesson's own example, each factor, confidence and hybrid."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tunelab.training.advisor import AdviceRequest, advise

LESSON_EXAMPLE = {
    "data_volume": "large", "knowledge_type": "behavioral", "update_frequency": "rare",
    "budget": "medium", "latency_sensitive": True, "accuracy_critical": False,
}  # fmt: skip


def test_the_lessons_example_gives_the_lessons_answer() -> None:
    advice = advise(AdviceRequest(**LESSON_EXAMPLE))
    assert advice.recommendation == "fine-tuning"
    assert (advice.fine_tuning_score, advice.rag_score) == (7, 2)
    assert advice.confidence == pytest.approx(5 / 7, abs=1e-3)
    assert not advice.hybrid_feasible
    assert [r.factor for r in advice.reasons] == list(LESSON_EXAMPLE)
    assert sum(r.points for r in advice.reasons) == 9


def test_a_knowledge_base_that_changes_is_rag() -> None:
    advice = advise(AdviceRequest(data_volume="small", knowledge_type="factual", update_frequency="frequent",
                                  budget="limited", accuracy_critical=True))  # fmt: skip
    assert advice.recommendation == "rag" and advice.fine_tuning_score == 0 and advice.rag_score == 12
    assert advice.confidence == 1.0


def test_close_scores_allow_a_hybrid_and_ties_go_to_rag() -> None:
    advice = advise(AdviceRequest(data_volume="large", knowledge_type="factual", budget="high",
                                  latency_sensitive=True))  # fmt: skip
    # fine-tuning: large 2 + rare 1 + high 1 + latency 1 = 5; RAG: factual 3
    assert (advice.fine_tuning_score, advice.rag_score) == (5, 3) and advice.hybrid_feasible
    # fine-tuning: behavioural 3 + rare 1 = 4; RAG: small 2 + medium budget 2 = 4
    tie = advise(AdviceRequest(data_volume="small", knowledge_type="behavioral", budget="medium"))
    assert tie.fine_tuning_score == tie.rag_score == 4 and tie.recommendation == "rag"
    assert tie.confidence == 0.0 and tie.hybrid_feasible


@pytest.mark.parametrize(("examples", "volume"), [(0, "small"), (999, "small"), (5000, "medium"),
                                                  (10_000, "medium"), (10_001, "large")])  # fmt: skip
def test_examples_decide_the_data_volume(examples: int, volume: str) -> None:
    assert advise(AdviceRequest(examples=examples, data_volume="large")).data_volume == volume


def test_unknown_fields_and_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        AdviceRequest(colour="blue")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="knowledge_type"):
        AdviceRequest(knowledge_type="vibes")  # type: ignore[arg-type]
