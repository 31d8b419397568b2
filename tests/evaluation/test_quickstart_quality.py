"""Acceptance: the shipped quick start learns its new name and keeps what the base model knew.

The model is the session's ``identity_run`` (examples/identity-lora.yaml as
shipped, on the real SmolLM2-135M-Instruct). One evaluation through the one
runner answers all three questions, tuned against its base: the held-out
identity questions (the example's eval split, worded unlike any training row)
with ROUGE-L, and the general-ability probe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "Tuna"  # examples/data/identity.json's new name


def _training_prompts(config: dict[str, Any]) -> set[str]:
    """Every user prompt the run trained on: the identity rows and the mixed-in rows."""
    from tunelab.training.data import read_records

    files = [config["dataset"]] + [mix["dataset"] for mix in config["dataset_mix"]]
    return {
        m.content.strip()
        for f in files
        for r in read_records(f)
        for m in r.messages or []
        if m.role == "user"
    }


@pytest.mark.slow
def test_the_quick_start_learns_its_name_and_keeps_general_ability(identity_run: Any) -> None:
    from tunelab.evaluation.run import EvalRequest, run_evaluation

    assert identity_run.status == "completed", identity_run.error
    run_dir = Path(identity_run.run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    assert Path(config["eval_dataset"]) == (EXAMPLES / "data" / "identity_heldout.json").resolve()
    assert config["dataset_mix"], "the quick start mixes general data into its identity rows"

    request = EvalRequest(model=str(run_dir), data=config["eval_dataset"], metrics=["rougeL"], probe=True,
                          max_new_tokens=config["output"]["max_new_tokens"], batch_size=16)  # fmt: skip
    report = run_evaluation(request)

    rows = report["rows"]
    unseen = [row for row in rows if row["prompt"].strip() not in _training_prompts(config)]
    assert len(unseen) == len(rows) >= 12
    tuned_named = [row["prompt"] for row in unseen if NAME in row["outputs"]["model"]]
    base_named = [row["prompt"] for row in unseen if NAME in row["outputs"]["against"]]
    retention = report["retention"]
    rouge = {side: report["summary"][side]["rougeL"] for side in ("model", "against")}
    print(f"\nnamed itself {NAME}: tuned {len(tuned_named)}/{len(unseen)}, base {len(base_named)}/{len(unseen)}"
          f"\nprobe right: tuned {retention['tuned_correct']}/{retention['size']}, base {retention['base_correct']}"
          f" (lost {len(retention['lost'])}, gained {len(retention['gained'])})"
          f"\nROUGE-L on the identity eval split: tuned {rouge['model']:.1f}, base {rouge['against']:.1f}")  # fmt: skip
    assert len(tuned_named) >= 10, [(row["prompt"], row["outputs"]["model"]) for row in unseen]
    assert len(base_named) < len(tuned_named)
    assert retention["tuned_correct"] >= retention["base_correct"], retention["lost"]
    assert retention["regression"] is False
    assert rouge["model"] > rouge["against"], rouge
