"""The bf16 copy of fp32 weights: written once, found by the loader, the same bits as casting at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def fp32_model(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A private copy of the tiny model (stored in fp32), so each test may add files to it."""
    folder = tmp_path / "fp32-model"
    shutil.copytree(tiny_model_dir, folder)
    assert json.loads((folder / "config.json").read_text()).get("dtype", "float32") == "float32"
    return folder


def test_the_copy_holds_each_weight_cast_to_bf16(fp32_model: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from tunelab.models.loading import variant_file, weights_variant, write_dtype_copy

    assert weights_variant(fp32_model, "bf16") is None  # no copy yet: the fp32 file, cast while loading
    written = write_dtype_copy(fp32_model, "bf16")
    assert written == variant_file(fp32_model, "bf16") == fp32_model / "model.bf16.safetensors"
    assert weights_variant(fp32_model, "bf16") == "bf16"
    assert weights_variant(fp32_model, "fp32") is None  # fp32 runs keep the published file
    assert write_dtype_copy(fp32_model, "bf16") is None  # once
    assert [p.name for p in fp32_model.iterdir() if "tmp" in p.name] == []
    published, copy = load_file(fp32_model / "model.safetensors"), load_file(written)
    assert published.keys() == copy.keys()
    for name, tensor in published.items():
        assert copy[name].dtype == torch.bfloat16
        assert torch.equal(copy[name], tensor.to(torch.bfloat16)), name


def test_a_bf16_load_reads_the_copy_and_gets_the_cast_weights(fp32_model: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from tunelab.models import loading

    cast = loading.load_base_model(fp32_model, precision="bf16").state_dict()
    written = loading.write_dtype_copy(fp32_model, "bf16")
    copied = loading.load_base_model(fp32_model, precision="bf16").state_dict()
    assert cast.keys() == copied.keys()
    for name, tensor in cast.items():
        assert copied[name].dtype == tensor.dtype and torch.equal(copied[name], tensor), name
    # The copy is what a bf16 load reads: a copy of zeros loads as zeros; fp32 keeps the published file.
    save_file({k: torch.zeros_like(v) for k, v in load_file(written).items()}, str(written), metadata={"format": "pt"})
    zeros = loading.load_base_model(fp32_model, precision="bf16").state_dict()
    assert all(not t.any() for name, t in zeros.items() if name.endswith("weight"))
    fp32 = loading.load_base_model(fp32_model, precision="fp32").state_dict()
    assert all(t.dtype == torch.float32 for t in fp32.values() if t.is_floating_point())
    assert any(t.any() for name, t in fp32.items() if name.endswith("proj.weight"))


def test_an_existing_fp32_builtin_cache_gets_its_copy_once(fp32_model: Path) -> None:
    from tunelab.models.builtin import cache_dir, ensure_builtin

    target = cache_dir("smollm2-135m-instruct")
    target.parent.mkdir(parents=True)
    shutil.copytree(fp32_model, target)  # a cache converted before the copy existed
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert ensure_builtin("smollm2-135m-instruct", progress=False) == target
    assert (target / "model.bf16.safetensors").is_file()
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again
    copied = (target / "model.bf16.safetensors").stat().st_mtime_ns
    assert ensure_builtin("smollm2-135m-instruct", progress=False) == target
    assert (target / "model.bf16.safetensors").stat().st_mtime_ns == copied
