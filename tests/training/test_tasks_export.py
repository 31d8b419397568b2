"""A seq2seq job's export is a plain HF folder: AutoModelForSeq2SeqLM loads it and answers as the studio does.

The T5-shaped model is tiny and random (``tunelab.testing``), trained with LoRA for a few steps so the
merged adapter changes the answers; the export is compared with the model tunelab itself loads for
chat and evaluation (``models.loading.load_parts`` on the run directory: base plus adapter).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.training.test_tasks import config_for

from tunelab.training import run_training

PROMPTS = ["Who are you?", "What can you do for me?", "Say the number 7."]


@pytest.mark.parametrize("shape", ["t5", "bart"])
def test_seq2seq_export_loads_with_auto_seq2seq_and_matches_the_engine(shape: str, identity_file: Path,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from tunelab.export.exporter import export_model
    from tunelab.models.loading import load_parts, locate
    from tunelab.testing import build_tiny_seq2seq

    rows = json.loads(identity_file.read_text())
    model_dir = build_tiny_seq2seq(tmp_path / "model", [f"{r['instruction']} {r['output']}" for r in rows], shape=shape)
    run = tmp_path / "run"
    config = config_for(model_dir, identity_file, max_steps=6, learning_rate=1e-2, max_rows=16,
                        output={"evaluate": False})  # fmt: skip
    result = run_training(config, run)
    assert result.status == "completed", result.error
    assert json.loads((run / "config.json").read_text())["task"] == "seq2seq"

    engine, engine_tokenizer = load_parts(locate(str(run), progress=False), precision="fp32", device="cpu")
    out = export_model(run, tmp_path / "export", fmt="merged", dtype="fp32", progress=False)
    plain = AutoModelForSeq2SeqLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(plain).__name__ == type(engine.get_base_model() if hasattr(engine, "get_base_model") else engine).__name__
    assert not (out / "adapter_config.json").exists()  # merged: no peft needed to load it

    batch = tokenizer(PROMPTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    assert batch["input_ids"].tolist() == engine_tokenizer(PROMPTS, padding=True, return_tensors="pt", return_token_type_ids=False)["input_ids"].tolist()
    start = plain.config.decoder_start_token_id
    decoder = torch.full((len(PROMPTS), 1), start, dtype=torch.long)
    with torch.no_grad():
        ours = engine(**batch, decoder_input_ids=decoder).logits
        theirs = plain(**batch, decoder_input_ids=decoder).logits
        assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
        greedy = {"max_new_tokens": 8, "do_sample": False, "num_beams": 1}
        engine_ids = engine.generate(**batch, **greedy)
        plain_ids = plain.generate(**batch, **greedy)
    assert engine_ids.tolist() == plain_ids.tolist()
    # the adapter changed the model: the export is the tuned model, not the base
    base = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(base(**batch, decoder_input_ids=decoder).logits, theirs, atol=1e-4)
