from pathlib import Path


def test_tiny_model_loads_with_plain_transformers(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text, return_tensors="pt")
    out = model(**ids, labels=ids["input_ids"])
    assert out.loss.item() > 0
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
