"""Greedy generations for side-by-side comparisons, deterministic by construction."""

from __future__ import annotations

from typing import Any


def chat_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def generate_replies(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, Any]]], max_new_tokens: int
) -> list[str]:
    """One greedy reply per conversation (already ending with a user turn)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    replies = []
    with torch.no_grad():
        for messages in conversations:
            text = chat_prompt(tokenizer, messages)
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
            out = model.generate(
                **ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = out[0, ids["input_ids"].shape[1] :]
            replies.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    model.train(was_training)
    return replies
