"""Tiny, random, fully offline models for tests, examples and benchmarks.

A real base model takes seconds to load and minutes to train on a laptop CPU;
tests that only check plumbing (the loss falls, parameters change, resume works)
need a model that trains in well under a second per step. ``build_tiny_model``
trains a small byte-level BPE tokenizer on the given texts and saves a random
Llama model of a few hundred thousand parameters next to it, with a ChatML chat
template like SmolLM2's, in a plain Hugging Face folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_DEFAULT_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello! I am a helpful assistant. How can I help you today?",
    "Give three tips for staying healthy: eat well, exercise, sleep.",
    "def add(a, b):\n    return a + b\n",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ; : ! ? ' \" ( ) [ ] { }",
]


def build_tiny_model(
    path: str | Path,
    texts: Iterable[str] | None = None,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Build and save a tiny Llama model and tokenizer at ``path``; return the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=_byte_bpe(texts, vocab_size, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(path)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(path)
    return path


# ---- tiny models of the other families (seq2seq, encoders), built from configs ----


def _byte_bpe(texts: Iterable[str] | None, vocab_size: int, special: list[str]) -> Any:
    """A small byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts`` (offline, in memory)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tokenizer.train_from_iterator(list(texts or _DEFAULT_TEXTS) * 2, trainer=trainer)
    return tokenizer


def build_tiny_seq2seq(
    path: str | Path,
    texts: Iterable[str] | None = None,
    *,
    shape: str = "t5",
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """A tiny random encoder-decoder (``shape`` "t5" or "bart") and its tokenizer at ``path``.

    T5 starts the decoder from the pad token and ends targets with ``</s>``; BART
    starts it from ``</s>`` and wraps inputs in ``<s> ... </s>``: the two
    conventions real checkpoints use, so the engine is tested against both.
    """
    import torch
    from tokenizers import processors
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
        T5ForConditionalGeneration,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if shape == "t5":
        special = ["<pad>", "</s>", "<unk>"]
        tok = _byte_bpe(texts, vocab_size, special)
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    elif shape == "bart":
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = _byte_bpe(texts, vocab_size, special)
        ids = [(t, tok.token_to_id(t)) for t in ("<s>", "</s>")]
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=ids
        )
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                       unk_token="<unk>", mask_token="<mask>")  # fmt: skip
    else:
        raise ValueError(f"unknown seq2seq shape {shape!r}: use 't5' or 'bart'")
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    model: Any
    if shape == "t5":
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=len(fast), d_model=hidden_size, d_kv=hidden_size // heads, d_ff=hidden_size * 2,
            num_layers=layers, num_heads=heads, pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
            decoder_start_token_id=fast.pad_token_id, feed_forward_proj="relu", tie_word_embeddings=True,
        ))  # fmt: skip
    else:
        model = BartForConditionalGeneration(BartConfig(
            vocab_size=len(fast), d_model=hidden_size, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=hidden_size * 2,
            decoder_ffn_dim=hidden_size * 2, max_position_embeddings=1024, pad_token_id=fast.pad_token_id,
            bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
            decoder_start_token_id=fast.eos_token_id, forced_eos_token_id=fast.eos_token_id,
        ))  # fmt: skip
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(path)
    return path


def build_tiny_encoder(
    path: str | Path,
    texts: Iterable[str] | None = None,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """A tiny random BERT-shaped encoder (saved as ``BertForMaskedLM``, like a real base) at ``path``.

    It has no classification head, as published encoders do not: the engine adds
    one sized to the dataset's label set, exactly as with ``bert-base-uncased``.
    """
    import torch
    from tokenizers import processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _byte_bpe(texts, vocab_size, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    ids = [(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=ids
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    model = BertForMaskedLM(BertConfig(
        vocab_size=len(fast), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=hidden_size * 2, max_position_embeddings=512, pad_token_id=fast.pad_token_id,
    ))  # fmt: skip
    model.save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m tunelab.testing {causal,t5,bart,encoder} PATH [TEXT_FILE]``: build a tiny model offline.

    The tokenizer is trained on the lines of ``TEXT_FILE`` (e.g. the dataset you
    will train on) when one is given, so its words are not split into bytes.
    """
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    kinds = ("causal", "t5", "bart", "encoder")
    if len(args) not in (2, 3) or args[0] not in kinds:
        print(f"usage: python -m tunelab.testing {{{','.join(kinds)}}} PATH [TEXT_FILE]", file=sys.stderr)
        return 2
    kind, path = args[0], Path(args[1])
    texts = Path(args[2]).read_text(encoding="utf-8").splitlines() if len(args) == 3 else None
    if kind == "causal":
        build_tiny_model(path, texts)
    elif kind == "encoder":
        build_tiny_encoder(path, texts)
    else:
        build_tiny_seq2seq(path, texts, shape=kind)
    print(f"built a tiny random {kind} model in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
