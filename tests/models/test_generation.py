"""The one generation helper: stop tokens, sampling, batches with left padding, streaming."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tunelab.errors import InvalidInput
from tunelab.models.generation import Sampling, generate, stop_token_ids, stream
from tunelab.training.encoding import render_prompt

PROMPTS = ["Hi", "Give three tips for staying healthy.", "What is 2 + 2? Answer briefly, please."]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return _varied(model), AutoTokenizer.from_pretrained(tiny_model_dir)


def _varied(model: Any) -> Any:
    """The tiny model with larger random weights: its greedy replies differ per prompt instead of repeating a space."""
    import torch

    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


def _prompts(tokenizer: Any) -> list[str]:
    return [render_prompt(tokenizer, [{"role": "user", "content": text}]) for text in PROMPTS]


class _Vocab:
    """A tokenizer stand-in: eos, unk, a chat template and a few known tokens."""

    def __init__(self, eos: int | None, template: str | None, vocab: dict[str, int]) -> None:
        self.eos_token_id, self.unk_token_id, self.chat_template, self.vocab = eos, 0, template, vocab

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.vocab.get(token, self.unk_token_id)


def test_stop_ids_are_the_union_of_eos_config_and_end_of_turn() -> None:
    # Llama 3 style: eos <|end_of_text|> (7), generation config [7, 9], replies end with <|eot_id|> (8)
    tokenizer = _Vocab(7, "{{ '<|start_header_id|>' }}...{{ '<|eot_id|>' }}", {"<|eot_id|>": 8, "<|im_end|>": 5})
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 9]))
    assert stop_token_ids(model, tokenizer) == [7, 9, 8]  # <|im_end|> is in the vocab, not in the template
    no_template = _Vocab(3, None, {"<|im_end|>": 5})
    assert stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None)), no_template) == [3]


def test_stop_ids_of_the_tiny_model_include_im_end(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(model, tokenizer)


def test_a_batch_gives_what_each_prompt_gives_alone(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    prompts = _prompts(tokenizer)
    sampling = Sampling(max_new_tokens=6)
    together = generate(model, tokenizer, prompts, sampling)
    alone = [generate(model, tokenizer, [p], sampling)[0] for p in prompts]
    assert together == alone
    assert len({done.text for done in together}) == len(prompts) and all(done.text for done in together)
    for prompt, done in zip(prompts, together, strict=True):
        assert done.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert 0 < done.completion_tokens <= 6 and done.finish_reason in ("stop", "length")
        if done.finish_reason == "length":
            assert done.completion_tokens == 6
    assert generate(model, tokenizer, [], sampling) == []


def test_stopping_on_an_end_of_turn_token(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    import torch

    [prompt] = _prompts(tokenizer)[:1]
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        first = int(model(ids).logits[0, -1].argmax())  # the greedy reply's first token
    [stopped] = generate(model, tokenizer, [prompt], Sampling(max_new_tokens=4), stop_ids=[first])
    assert stopped.finish_reason == "stop" and stopped.text == "" and stopped.completion_tokens == 1


def test_seeded_sampling_repeats_and_temperature_zero_is_greedy(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    prompts = _prompts(tokenizer)
    hot = Sampling(max_new_tokens=8, temperature=1.5, top_p=1.0, top_k=0, seed=3)
    assert generate(model, tokenizer, prompts, hot) == generate(model, tokenizer, prompts, hot)
    assert Sampling().greedy and Sampling().generate_kwargs()["do_sample"] is False
    assert Sampling(temperature=0.7, top_k=20).generate_kwargs()["top_k"] == 20


def test_stream_adds_up_to_the_whole_reply(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    prompt = _prompts(tokenizer)[1]
    [done] = generate(model, tokenizer, [prompt], Sampling(max_new_tokens=10))
    assert "".join(stream(model, tokenizer, prompt, Sampling(max_new_tokens=10))).strip() == done.text


def test_a_failure_in_the_stream_thread_reaches_the_reader(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded

    class Broken:
        def __getattr__(self, name: str) -> Any:
            return getattr(model, name)

        def parameters(self) -> Any:
            return model.parameters()

        def generate(self, **kwargs: Any) -> Any:
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        list(stream(Broken(), tokenizer, "hello", Sampling(max_new_tokens=2)))


@pytest.mark.parametrize("sampling", [Sampling(max_new_tokens=0), Sampling(temperature=-1), Sampling(top_p=0),
                                      Sampling(top_k=-1)])  # fmt: skip
def test_bad_sampling_is_refused(sampling: Sampling, loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    with pytest.raises(InvalidInput):
        generate(model, tokenizer, ["x"], sampling)
