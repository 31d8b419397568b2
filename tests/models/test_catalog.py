"""Resolution and catalog facts on real folders: the tiny model, a pulled Hub copy, bad paths."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.errors import InvalidInput, ModelUnavailable, NotFound
from tunelab.models import (
    BUILTIN_MODELS,
    ModelSource,
    is_available,
    list_models,
    model_info,
    resolve_model,
)
from tunelab.models.builtin import install_atomically


def test_resolve_local_folder_returns_it(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_model_info_of_tiny_model_reads_config_and_headers(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    info = model_info(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert info.source is ModelSource.local
    assert info.parameters == sum(p.numel() for p in model.parameters())
    assert info.architecture == "LlamaForCausalLM"
    assert info.context_length == 1024
    assert info.chat_template is True
    assert info.hidden_size == 64 and info.num_layers == 2
    linear = [m for n, m in model.named_modules() if type(m).__name__ == "Linear" and "lm_head" not in n]
    assert info.linear_parameters == sum(m.weight.numel() for m in linear)
    assert info.lora_dims == sum(m.in_features + m.out_features for m in linear)


def test_builtin_info_is_static_and_available_offline() -> None:
    info = model_info("smollm2-135m-instruct")
    assert info.source is ModelSource.builtin
    assert info.parameters == 134_515_008
    assert info.chat_template and info.context_length == 8192
    assert info.path is None  # nothing converted yet in this test's fresh home
    assert info.available and is_available("smollm2-135m-instruct")
    assert [m.id for m in list_models()] == list(BUILTIN_MODELS)


def test_offline_hub_id_raises_with_pull_hint() -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("some-org/not-downloaded-model")
    assert "some-org/not-downloaded-model" in caught.value.message
    assert "tunelab models pull some-org/not-downloaded-model" in caught.value.hint
    assert not is_available("some-org/not-downloaded-model")


def test_settings_offline_also_blocks_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunelab.settings import get_settings

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TUNELAB_OFFLINE", "1")
    get_settings.cache_clear()
    with pytest.raises(ModelUnavailable):
        model_info("some-org/not-downloaded-model")


def test_pulled_hub_model_resolves_offline_and_is_listed(
    tiny_model_dir: Path, tunelab_home: Path
) -> None:
    shutil.copytree(tiny_model_dir, tunelab_home / "models" / "hub" / "acme--tiny")
    assert resolve_model("acme/tiny") == tunelab_home / "models" / "hub" / "acme--tiny"
    assert is_available("acme/tiny")
    listed = {m.id: m for m in list_models()}
    assert listed["acme/tiny"].source is ModelSource.hub
    assert listed["acme/tiny"].parameters == model_info(str(tiny_model_dir)).parameters


def test_bad_names_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(NotFound, match=r"no config\.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(NotFound, match="Unknown model"):
        resolve_model("no-such-builtin")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(InvalidInput, match="PEFT adapter"):
        resolve_model(str(tmp_path / "adapter"))


def test_install_atomically_leaves_nothing_when_the_build_fails(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m"
    target.parent.mkdir()

    def broken(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        install_atomically(target, broken)
    assert list(target.parent.iterdir()) == []
    install_atomically(target, lambda folder: (folder / "config.json").write_text("{}"))
    assert [p.name for p in target.parent.iterdir()] == ["m"]


def test_cli_prints_message_and_hint_for_offline_hub_id() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tunelab", "models", "info", "some-org/absent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "model_unavailable" in done.stderr and "Hint: Run `tunelab models pull" in done.stderr
