"""Every preflight error, each triggered for real on this (CPU-only) machine."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tunelab.training import preflight
from tunelab.training.preflight import errors_only


def _codes(config, **kwargs) -> set[str]:
    return {i.code for i in errors_only(preflight(config, **kwargs))}


requires_cpu_only = pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None and __import__("torch").cuda.is_available(),
    reason="these errors only occur without a GPU",
)


def test_a_valid_config_passes(make_config) -> None:
    assert _codes(make_config()) == set()


@requires_cpu_only
@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"method": "qlora", "lora": {"r": 8}}, "qlora_needs_cuda"),
        ({"method": "qlora"}, "bitsandbytes_missing"),
        ({"optimizer": "adamw_8bit"}, "bitsandbytes_missing"),
        ({"precision": "fp16"}, "fp16_on_cpu"),
        ({"device": "cuda"}, "cuda_unavailable"),
        ({"attention": "flash_attention_2"}, "flash_attention_unavailable"),
        ({"kernels": "liger"}, "liger_unavailable"),
    ],
)
def test_hardware_errors(make_config, fields: dict, code: str) -> None:
    if code == "bitsandbytes_missing" and importlib.util.find_spec("bitsandbytes"):
        pytest.skip("bitsandbytes is installed")
    assert code in _codes(make_config(**fields))


def test_missing_tracker(make_config) -> None:
    if importlib.util.find_spec("mlflow"):
        pytest.skip("mlflow is installed")
    assert "tracker_missing" in _codes(make_config(report_to="mlflow"))


def test_model_not_available(make_config, tmp_path: Path) -> None:
    assert "model_unavailable" in _codes(make_config(model=str(tmp_path / "nope")))
    assert "model_unavailable" in _codes(make_config(model="no-such-model"))


def test_dataset_missing_and_invalid(make_config, tmp_path: Path) -> None:
    assert "dataset_missing" in _codes(make_config(dataset=str(tmp_path / "missing.json")))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "dataset_invalid" in _codes(make_config(dataset=str(bad)))
    assert "dataset_missing" in _codes(make_config(eval_dataset=str(tmp_path / "gone.jsonl")))


def test_memory_estimate_too_large(make_config) -> None:
    issues = preflight(make_config(batch_size=64, max_length=131072))
    assert "memory_insufficient" in {i.code for i in issues}


def test_disk_space(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=1024))
    assert "disk_insufficient" in _codes(make_config())


def test_all_problems_reported_at_once(make_config, tmp_path: Path) -> None:
    codes = _codes(make_config(precision="fp16", dataset=str(tmp_path / "x.json"), kernels="liger"))
    assert {"fp16_on_cpu", "dataset_missing", "liger_unavailable"} <= codes


def test_engine_exits_2_on_preflight_errors(make_config, tmp_path: Path) -> None:
    from tests.training.conftest import read_jsonl

    from tunelab.training import run_training

    result = run_training(make_config(precision="fp16"), tmp_path / "run")
    assert result.exit_code == 2 and result.error["code"] == "preflight_failed"
    failed = read_jsonl(tmp_path / "run" / "events.jsonl")[-1]
    assert failed["type"] == "failed" and failed["data"]["hint"]
