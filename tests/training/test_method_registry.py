"""The method registry is the one source of method facts, and the code that uses them agrees."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest

from tunelab.errors import InvalidInput
from tunelab.models import model_info
from tunelab.training import methods
from tunelab.training.config import TrainConfig
from tunelab.training.methods import METHODS, MethodSpec

SRC = Path(__file__).resolve().parents[2] / "src" / "tunelab"


def test_every_trainconfig_method_has_a_spec() -> None:
    declared = get_args(TrainConfig.model_fields["method"].annotation)
    assert set(declared) == set(METHODS) and declared
    for name, spec in METHODS.items():
        assert isinstance(spec, MethodSpec) and spec.name == name
        assert spec.family in get_args(methods.Family)


def test_public_shape_is_stable_and_json_ready() -> None:
    keys = {"name", "family", "mergeable", "packable", "default_learning_rate", "needs_cuda", "description"}
    for spec in METHODS.values():
        body = spec.as_dict()
        assert keys <= set(body)
        json.dumps(body)
    with pytest.raises(AttributeError):
        METHODS["lora"].mergeable = False  # type: ignore[misc]
    with pytest.raises(InvalidInput):
        methods.get("nope")


@pytest.mark.parametrize("name", list(METHODS))
def test_default_learning_rates_come_from_the_registry(name: str) -> None:
    config = TrainConfig(dataset="x.json", method=name)  # type: ignore[arg-type]
    assert config.learning_rate is None
    assert config.peak_learning_rate == METHODS[name].default_learning_rate
    assert TrainConfig(dataset="x.json", method=name, learning_rate=1e-3).peak_learning_rate == 1e-3  # type: ignore[arg-type]


def test_no_learning_rate_is_typed_outside_the_registry() -> None:
    typed = re.compile(r"(?<![\w.])(2e-4|2e-5|0\.0002|0\.00002)(?![\w.])")
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "methods.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if typed.search(line)
    ]
    assert offenders == []


def test_packing_and_lora_settings_follow_the_registry() -> None:
    for name, spec in METHODS.items():
        config = TrainConfig(dataset="x.json", method=name, packing=True)  # type: ignore[arg-type]
        assert config.packing == spec.packable, name
        if not spec.uses_lora_settings:
            with pytest.raises(ValueError, match="do not apply"):
                TrainConfig(dataset="x.json", method=name, lora={"r": 4})  # type: ignore[arg-type]


def test_peft_configs_per_method() -> None:
    import peft

    expected = {"lora": peft.LoraConfig, "dora": peft.LoraConfig, "qlora": peft.LoraConfig,
                "adalora": peft.AdaLoraConfig, "ia3": peft.IA3Config,
                "prefix": peft.PrefixTuningConfig, "prompt": peft.PromptTuningConfig}  # fmt: skip
    for name, cls in expected.items():
        built = methods.peft_config(TrainConfig(dataset="x.json", method=name), 10)  # type: ignore[arg-type]
        assert type(built) is cls, name
        assert built.peft_type.value == METHODS[name].peft_type
        assert methods.spec_for_adapter(built.to_dict()).name == ("lora" if name == "qlora" else name)
    assert methods.peft_config(TrainConfig(dataset="x.json", method="dora"), 10).use_dora
    with pytest.raises(InvalidInput):
        methods.peft_config(TrainConfig(dataset="x.json", method="full"), 10)


@pytest.mark.parametrize("name", [m for m in METHODS if not METHODS[m].needs_cuda])
def test_trainable_parameter_formula_matches_peft(name: str, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from tunelab.training.modeling import count_parameters, wrap_model

    config = TrainConfig(dataset="x.json", method=name, num_virtual_tokens=8)  # type: ignore[arg-type]
    wrapped = wrap_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config, 10)
    real, _ = count_parameters(wrapped)
    formula = methods.trainable_parameters(config, model_info(str(tiny_model_dir)))
    # exact, except AdaLoRA's per-layer singular values (r per adapted layer, under 1%)
    assert formula == pytest.approx(real, rel=0.01 if name == "adalora" else 0)


def test_builtin_lora_count_matches_peft() -> None:
    # 16 x sum(in+out) over the 7 linear layers of 30 blocks = PEFT's r=16 all-linear count.
    info = model_info("smollm2-135m-instruct")
    assert methods.trainable_parameters(TrainConfig(dataset="x.json"), info) == 4_884_480
    assert methods.trainable_parameters(TrainConfig(dataset="x.json", method="full"), info) == info.parameters


def test_estimate_uses_trainconfig_defaults_and_its_lora_dropout() -> None:
    info = model_info("smollm2-135m-instruct")
    default = methods.estimate_for(methods.sizing_config("lora"), info)
    assert (default.batch_size, default.max_length) == (
        TrainConfig.model_fields["batch_size"].default, TrainConfig.model_fields["max_length"].default
    )
    dropped = methods.estimate_for(methods.sizing_config("lora", lora={"dropout": 0.1}), info)
    same = dropped.activations_bytes == default.activations_bytes
    assert same == (TrainConfig(dataset="x.json").lora.dropout > 0)  # only the dropout changes them
    estimates = methods.estimate_methods(info, precision="fp32")
    assert set(estimates) == set(METHODS)
    assert isinstance(methods.estimate_methods(info, methods=("qlora",), precision="fp32")["qlora"], InvalidInput)


def _train(make_config, tmp_path: Path, method: str) -> Path:
    from tunelab.training import run_training

    run = tmp_path / method
    config = make_config(method=method, max_steps=2, output={"evaluate": False, "merge_adapter": True})
    assert run_training(config, run).status == "completed"
    return run


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_output_merges_exactly_the_mergeable_methods(method: str, make_config, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = _train(make_config, tmp_path, method)
    merged_dir = run / "output" / "merged"
    assert merged_dir.exists() == METHODS[method].mergeable
    if not merged_dir.exists():
        return
    base_dir = json.loads((run / "config.json").read_text())["model"]
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    stacked = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), run / "output")
    with torch.inference_mode():
        got, want = merged(ids).logits, stacked(ids).logits
    # merged in fp32, then cast once to the run's storage dtype (bf16 where the CPU has it)
    saved = json.loads((merged_dir / "config.json").read_text())
    stored = saved.get("dtype", saved.get("torch_dtype"))
    precision = json.loads((run / "config.json").read_text())["precision"]
    assert stored == {"fp32": "float32", "bf16": "bfloat16"}[precision]
    tolerance = 1e-4 if stored == "float32" else 2e-2
    torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


def test_export_refuses_what_the_registry_says_cannot_merge(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunelab.export.merged import export_merged

    adapter = tmp_path / "prompt-adapter"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))  # fmt: skip
    model.save_pretrained(adapter)
    assert not METHODS["prompt"].mergeable
    with pytest.raises(InvalidInput, match="cannot be merged"):
        export_merged(adapter, tmp_path / "out", progress=False)


def test_model_card_lists_lora_settings_only_where_they_apply() -> None:
    from tunelab.export.model_card import render_model_card

    for name, spec in METHODS.items():
        card = render_model_card({"method": name, "lora": {"r": 8}}, {}, {})
        assert ("`lora.r`" in card) == spec.uses_lora_settings, name
        assert ("library_name: peft" in card) == spec.is_adapter, name
