"""Export test fixtures: a small dataset and job configurations for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Build a job configuration {model, dataset, hyperparameters} on a 40-row alpaca file."""
    rows = [
        {"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."}
        for i in range(40)
    ]
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(rows))

    def build(model: str = "tiny", **hyper: Any) -> dict[str, Any]:
        return {"model": model, "dataset": str(path), "hyperparameters": hyper}

    return build


PROMPTS = ("Say the number 3.", "Say the number 17.", "Who are you?")


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tunelab run on the tiny model: LoRA, 15 steps, so the adapter changes the replies.

    Random weights give near-uniform logits, where f16 rounding may flip an
    argmax; a trained adapter makes the replies something worth comparing.
    """
    from tunelab.training import TrainConfig, run_training

    root = tmp_path_factory.mktemp("export-run")
    rows = [{"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."} for i in range(40)]
    (root / "numbers.json").write_text(json.dumps(rows))
    config = TrainConfig.model_validate({
        "name": "numbers", "model": str(tiny_model_dir), "dataset": str(root / "numbers.json"),
        "method": "lora", "lora": {"r": 8, "alpha": 16}, "batch_size": 8, "epochs": 3, "learning_rate": 1e-2,
        "warmup_ratio": 0.0, "eval_split": 0.0, "save_steps": 0, "max_length": 64,
        "output": {"evaluate": False, "eval_generations": 0},
    })  # fmt: skip
    result = run_training(config, root / "run")
    assert result.status == "completed", result.error
    return root / "run"


def greedy_transformers(model_dir: Path, prompts: tuple[str, ...] = PROMPTS, max_new_tokens: int = 12) -> list[list[int]]:
    """Greedy reply tokens from plain transformers and the folder's saved chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    replies = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        replies.append(out[0, ids.shape[1] :].tolist())
    return replies
