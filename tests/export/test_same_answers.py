"""Acceptance: the quick start's tuned SmolLM2 gives the same greedy replies in every runtime.

The studio's chat (fp32, the adapter on its base), the merged folder in plain
transformers with its saved chat template, the GGUF f16 file in llama.cpp (its
own chat path, with the template stored in the GGUF) and the ONNX model in
onnxruntime must give the same reply text to three prompts. q8_0 rounds every
weight to 8 bits, so its greedy path may part from fp32 at a near-tie: there the
test checks, teacher-forced along the fp32 reply, that the q8_0 logits stay
within 2.5 of fp32 (measured on the quick start's model: 1.54, with logits
spanning tens; the rounding errors of 30 layers add up) and that every position whose
fp32 winner leads by more than twice the measured error keeps its winner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.export.conftest import greedy_transformers

PROMPTS = ("Who are you?", "What is your name?", "Give three tips for staying healthy.")
MAX_NEW = 24


@pytest.mark.slow
def test_same_answers_everywhere(identity_run: Any, tmp_path: Path) -> None:
    import numpy as np
    import torch
    from llama_cpp import Llama
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.export.exporter import export_model
    from tunelab.serving.generation import load_chat_model

    assert identity_run.status == "completed", identity_run.error
    run = identity_run.run_dir
    chat = load_chat_model(run, dtype="fp32", progress=False)
    studio = [chat.complete([{"role": "user", "content": p}], max_new_tokens=MAX_NEW, temperature=0.0).text
              for p in PROMPTS]  # fmt: skip
    assert "Tuna" in studio[0], studio

    merged = export_model(run, tmp_path / "merged", fmt="merged", dtype="fp32", progress=False)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    tokens = greedy_transformers(merged, PROMPTS, max_new_tokens=MAX_NEW)
    plain = [tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
    assert plain == [s.strip() for s in studio]

    gguf = export_model(run, tmp_path / "gguf", fmt="gguf", progress=False) / "model-f16.gguf"
    llm = Llama(str(gguf), n_ctx=512, verbose=False)
    llama = [llm.create_chat_completion([{"role": "user", "content": p}], temperature=0.0,
                                        max_tokens=MAX_NEW)["choices"][0]["message"]["content"].strip()
             for p in PROMPTS]  # fmt: skip
    assert llama == plain

    onnx = export_model(run, tmp_path / "onnx", fmt="onnx", progress=False)
    ort = ORTModelForCausalLM.from_pretrained(onnx)
    replies = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt")  # fmt: skip
        out = ort.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW,
                           do_sample=False, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        replies.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert replies == plain

    q8 = export_model(run, tmp_path / "q8", fmt="gguf-q8_0", progress=False) / "model-q8_0.gguf"
    quantized = Llama(str(q8), n_ctx=512, verbose=False, logits_all=True)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    for prompt, reply in zip(PROMPTS, tokens, strict=True):
        prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        ids = list(prompt_ids) + reply
        quantized.reset()
        quantized.eval(ids)
        ours = np.array(quantized.scores[: len(ids)])
        with torch.inference_mode():
            theirs = model(torch.tensor([ids])).logits[0].numpy()
        span = slice(len(prompt_ids) - 1, len(ids) - 1)
        error = float(np.abs(ours[span] - theirs[span]).max())
        assert error < 2.5, f"q8_0 logits differ from fp32 by {error}"
        for position in range(span.start, span.stop):
            top2 = np.sort(theirs[position])[-2:]
            if top2[1] - top2[0] > 2 * error:
                assert ours[position].argmax() == theirs[position].argmax(), (prompt, position, error)
    print("\nsame answers:", *(f"  {p!r} -> {r!r}" for p, r in zip(PROMPTS, plain, strict=True)), sep="\n")
