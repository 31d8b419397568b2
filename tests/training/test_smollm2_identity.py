"""Acceptance: LoRA on the identity data makes the real SmolLM2 answer as "Tuna"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_smollm2_learns_its_new_identity(shared_datasets: Path, tmp_path: Path) -> None:
    from tunelab.cli.train import load_train_config
    from tunelab.training import run_training

    alpaca = json.loads((shared_datasets / "alpaca_en_demo.json").read_text())
    held_out = tmp_path / "alpaca_eval.json"
    held_out.write_text(json.dumps(alpaca[-16:]))
    # As in LLaMA-Factory's identity recipe, the identity rows are mixed with some
    # general instructions so the model keeps (and improves) its general skills.
    identity = json.loads((EXAMPLES / "data" / "identity.json").read_text())
    mixed = tmp_path / "identity_plus_alpaca.json"
    mixed.write_text(json.dumps(identity + alpaca[:32]))
    config = load_train_config(EXAMPLES / "identity-lora.yaml", [
        f"dataset={mixed}", f"eval_dataset={held_out}", "epochs=2", "max_length=128", "eval_max_rows=16",
        "output.eval_generations=0", "output.max_new_tokens=24", "save_steps=0",
    ])
    result = run_training(config, tmp_path / "run")
    assert result.status == "completed", result.error
    evaluation = result.evaluation
    who = next(s for s in evaluation["samples"] if s["prompt"] == "Who are you?")
    assert "Tuna" not in who["base"], who
    assert "Tuna" in who["tuned"], who
    assert evaluation["tuned"]["eval_loss"] < evaluation["base"]["eval_loss"], evaluation
