"""Acceptance: LoRA on the identity data makes the real SmolLM2 answer as "Tuna"."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.slow
def test_smollm2_learns_its_new_identity(identity_run: Any) -> None:
    # The run (examples/identity-lora.yaml mixed with alpaca rows) is tests/conftest.py's
    # `identity_run`, shared with tests/export/test_same_answers.py so it trains once.
    result = identity_run
    assert result.status == "completed", result.error
    evaluation = result.evaluation
    who = next(s for s in evaluation["samples"] if s["prompt"] == "Who are you?")
    assert "Tuna" not in who["base"], who
    assert "Tuna" in who["tuned"], who
    assert evaluation["tuned"]["eval_loss"] < evaluation["base"]["eval_loss"], evaluation
