"""Every export format of a real (tiny) tunelab run loads in its own runtime and answers the same.

The reference is plain transformers on the merged folder with its saved chat
template (``greedy_transformers``); llama.cpp (``llama-cpp-python``) and
onnxruntime must produce the same greedy tokens. q8_0 rounds each weight to 8
bits, so there the test allows a different token only where transformers' own
top-two logits are closer than the q8_0 logit error it measured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.export.conftest import PROMPTS, greedy_transformers

from tunelab.export.exporter import FORMATS, export_model
from tunelab.export.target import TargetExists

MAX_NEW = 12


@pytest.fixture(scope="module")
def exports(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny run exported once in every format."""
    root = tmp_path_factory.mktemp("exports")
    return {fmt: export_model(tiny_run, root / fmt, fmt=fmt, dtype="fp32", progress=False) for fmt in FORMATS}


@pytest.fixture(scope="module")
def reference(exports: dict[str, Path]) -> list[list[int]]:
    return greedy_transformers(exports["merged"], max_new_tokens=MAX_NEW)


def _prompt_ids(folder: Path, prompt: str) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def _llama(path: Path, **kwargs: Any) -> Any:
    from llama_cpp import Llama

    return Llama(str(path), n_ctx=256, verbose=False, seed=0, **kwargs)


def _llama_greedy(llm: Any, ids: list[int], eos: int) -> list[int]:
    out: list[int] = []
    for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
        out.append(int(token))
        if token == eos or len(out) == MAX_NEW:
            break
    return out


def test_every_format_has_a_card_and_provenance(exports: dict[str, Path]) -> None:
    for fmt, folder in exports.items():
        card = (folder / "README.md").read_text()
        assert "## How to use" in card and "numbers" in card, fmt
        assert json.loads((folder / "tunelab_export.json").read_text())["format"] == fmt
        assert not (folder / ".merged").exists() and not list(folder.parent.glob(f".{fmt}.tmp-*"))
    assert "- gguf" in (exports["gguf"] / "README.md").read_text()
    assert "ORTModelForCausalLM" in (exports["onnx"] / "README.md").read_text()


def test_adapter_folder_loads_with_peft(exports: dict[str, Path], reference: list[list[int]], tiny_run: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = exports["adapter"]
    assert (folder / "adapter_model.safetensors").exists() and (folder / "tokenizer.json").exists()
    base = json.loads((tiny_run / "config.json").read_text())["model"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([_prompt_ids(folder, PROMPTS[0])])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW,
                         do_sample=False, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    assert out[0, ids.shape[1] :].tolist() == reference[0]


def test_gguf_f16_gives_the_transformers_greedy_tokens(exports: dict[str, Path], reference: list[list[int]]) -> None:
    from transformers import AutoTokenizer

    folder = exports["gguf"]
    llm = _llama(folder / "model-f16.gguf")
    eos = AutoTokenizer.from_pretrained(exports["merged"]).eos_token_id
    for prompt, expected in zip(PROMPTS, reference, strict=True):
        ids = _prompt_ids(exports["merged"], prompt)
        assert llm.tokenize(_text(exports["merged"], prompt).encode(), add_bos=False, special=True) == ids
        assert _llama_greedy(llm, ids, eos) == expected, prompt
    # llama.cpp's own chat path (the template stored in the GGUF) answers the same text
    reply = llm.create_chat_completion([{"role": "user", "content": PROMPTS[0]}], temperature=0.0, max_tokens=MAX_NEW)
    expected_text = AutoTokenizer.from_pretrained(exports["merged"]).decode(reference[0], skip_special_tokens=True)
    assert reply["choices"][0]["message"]["content"].strip() == expected_text.strip()
    assert "ChatML" not in (folder / "Modelfile").read_text()  # the template itself, not a name for it


def _text(folder: Path, prompt: str) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return str(tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True))  # fmt: skip


def test_gguf_q8_0_agrees_within_its_rounding(exports: dict[str, Path], reference: list[list[int]]) -> None:
    """Teacher-forced on transformers' greedy path, q8_0 may pick another token only at a near-tie."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    assert (exports["gguf-q8_0"] / "model-q8_0.gguf").stat().st_size < (exports["gguf"] / "model-f16.gguf").stat().st_size
    llm = _llama(exports["gguf-q8_0"] / "model-q8_0.gguf", logits_all=True)
    model = AutoModelForCausalLM.from_pretrained(exports["merged"], dtype=torch.float32).eval()
    for prompt, expected in zip(PROMPTS, reference, strict=True):
        ids = _prompt_ids(exports["merged"], prompt) + expected
        llm.reset()
        llm.eval(ids)
        ours = np.array(llm.scores[: len(ids)])
        with torch.inference_mode():
            theirs = model(torch.tensor([ids])).logits[0].numpy()
        error = float(np.abs(ours - theirs).max())
        assert error < 0.25, f"q8_0 logits differ by {error}"
        for position in range(len(ids) - len(expected) - 1, len(ids) - 1):
            top2 = np.sort(theirs[position])[-2:]
            if top2[1] - top2[0] > 2 * error:  # a clear winner must stay the winner
                assert ours[position].argmax() == theirs[position].argmax(), (prompt, position)


def test_gguf_adapter_on_the_base_gguf_equals_the_merged_model(
    exports: dict[str, Path], reference: list[list[int]], tiny_run: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    base = json.loads((tiny_run / "config.json").read_text())["model"]
    base_gguf = export_model(base, tmp_path / "base", fmt="gguf", progress=False) / "model-f16.gguf"
    llm = _llama(base_gguf, lora_path=str(exports["gguf-adapter"] / "adapter.gguf"))
    eos = AutoTokenizer.from_pretrained(exports["merged"]).eos_token_id
    for prompt, expected in zip(PROMPTS, reference, strict=True):
        assert _llama_greedy(llm, _prompt_ids(exports["merged"], prompt), eos) == expected, prompt
    plain = _llama(base_gguf)  # and without the adapter it answers differently: the adapter mattered
    assert _llama_greedy(plain, _prompt_ids(exports["merged"], PROMPTS[0]), eos) != reference[0]


def test_onnx_gives_the_transformers_greedy_tokens(exports: dict[str, Path], reference: list[list[int]]) -> None:
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    folder = exports["onnx"]
    assert (folder / "model.onnx").exists()
    model = ORTModelForCausalLM.from_pretrained(folder)
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(folder).eos_token_id
    for prompt, expected in zip(PROMPTS, reference, strict=True):
        ids = torch.tensor([_prompt_ids(folder, prompt)])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW,
                             do_sample=False, eos_token_id=eos)  # fmt: skip
        assert out[0, ids.shape[1] :].tolist() == expected, prompt


def test_modelfile_carries_the_trained_template(exports: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    from tunelab.export.ollama import go_template, measure_template

    text = (exports["gguf"] / "Modelfile").read_text()
    tokenizer = AutoTokenizer.from_pretrained(exports["merged"])
    pieces = measure_template(tokenizer)
    assert pieces is not None and pieces.wrappers["user"] == ("<|im_start|>user\n", "<|im_end|>\n")
    assert "FROM ./model-f16.gguf" in text and f'TEMPLATE """{go_template(pieces)}"""' in text
    assert 'SYSTEM "You are a helpful assistant."' in text and 'PARAMETER stop "<|im_end|>"' in text
    assert "FROM ./model-q8_0.gguf" in (exports["gguf-q8_0"] / "Modelfile").read_text()


def test_a_failed_export_leaves_nothing(tiny_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "run"
    shutil.copytree(tiny_run, broken)
    (broken / "output" / "adapter_model.safetensors").write_bytes(b"not safetensors")
    exports = tmp_path / "exports"
    exports.mkdir()
    with pytest.raises(Exception):  # noqa: B017 - whatever the loader raises, nothing may remain
        export_model(broken, exports / "out", fmt="gguf", progress=False)
    assert list(exports.iterdir()) == []  # neither the target nor its temporary sibling


def test_an_existing_folder_is_refused_and_kept(tiny_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(TargetExists) as caught:
        export_model(tiny_run, target, fmt="adapter", progress=False)
    assert "already exists" in caught.value.message and caught.value.hint
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    with pytest.raises(Exception, match="unknown export format"):
        export_model(tiny_run, tmp_path / "x", fmt="safetensors-int3", progress=False)
    assert not (tmp_path / "x").exists()


def test_cli_formats_and_push(tiny_run: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from tunelab.cli.main import run; run()", "export", str(tiny_run)]
    done = subprocess.run([*cli, "-o", str(tmp_path / "a"), "--format", "gguf-adapter"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gguf-adapter export written to" in done.stdout and "adapter.gguf" in done.stdout
    bad = subprocess.run([*cli, "-o", str(tmp_path / "b"), "--push-to-hub", "not a repo"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 1 and "user/name" in bad.stderr and not (tmp_path / "b").exists()
    offline = subprocess.run([*cli, "-o", str(tmp_path / "c"), "--format", "adapter", "--push-to-hub", "alice/numbers"],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert offline.returncode == 1 and "Error [hub_offline]" in offline.stderr  # HF_HUB_OFFLINE=1 in tests
    assert (tmp_path / "c" / "adapter_model.safetensors").exists()  # the export itself is kept
    unknown = subprocess.run([*cli, "-o", str(tmp_path / "d"), "--format", "tflite"],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert unknown.returncode == 1 and "unknown export format" in unknown.stderr and "gguf-q8_0" in unknown.stderr
