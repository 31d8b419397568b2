"""Merged exports load with plain transformers and compute what base + adapter computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.errors import InvalidInput
from tunelab.export.merged import export_merged


def _run_with_adapter(base: Path, run: Path) -> Path:
    """A run directory like the engine leaves: config.json naming the base, output/ holding a LoRA."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = run / "output"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))  # fmt: skip
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(base).save_pretrained(output)
    (output / "README.md").write_text("# my tuned model\n")
    (run / "config.json").write_text(json.dumps({"model": str(base)}))
    return run


def _logits(model: object, tokenizer: object) -> object:
    import torch

    encoded = tokenizer("a test sentence", return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        return model(**encoded).logits.float()  # type: ignore[operator]


def test_merged_export_equals_base_plus_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = _run_with_adapter(tiny_model_dir, tmp_path / "run")
    out = export_merged(run, tmp_path / "merged", dtype="fp32", progress=False)
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()
    assert (out / "README.md").read_text() == "# my tuned model\n"
    assert json.loads((out / "tunelab_export.json").read_text())["adapter"] == str(run / "output")

    tokenizer = AutoTokenizer.from_pretrained(out)
    merged = AutoModelForCausalLM.from_pretrained(out)
    stacked = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run / "output")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.testing.assert_close(_logits(merged, tokenizer), _logits(stacked, tokenizer), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(_logits(merged, tokenizer), _logits(base, tokenizer), atol=1e-3)  # the adapter mattered


def test_dtype_choice_and_no_overwrite(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    run = _run_with_adapter(tiny_model_dir, tmp_path / "run")
    out = export_merged(run / "output", tmp_path / "half", dtype="bf16", progress=False)
    assert AutoModelForCausalLM.from_pretrained(out, dtype="auto").dtype == torch.bfloat16  # as saved
    with pytest.raises(InvalidInput) as caught:
        export_merged(run, out, progress=False)
    assert "already exists" in caught.value.message and "new output folder" in caught.value.hint
    with pytest.raises(InvalidInput):
        export_merged(run, tmp_path / "x", dtype="int3", progress=False)
    assert not (tmp_path / "x").exists()


def test_cli_export(tiny_model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    run = _run_with_adapter(tiny_model_dir, tmp_path / "run")
    command = [sys.executable, "-c", "from tunelab.cli.main import run; run()", "export", str(run), "-o", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "merged export written to" in done.stdout and "AutoModelForCausalLM.from_pretrained" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "Error [export_target_exists]" in again.stderr and "Hint: choose a new" in again.stderr
