"""`tunelab serve-model`: its names, its errors, the vLLM command it prints, int8 and ``ft:`` ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.errors import InvalidInput, NotFound
from tunelab.serving.registry import ServedModels, parse_tuned_id
from tunelab.serving.standalone import parse_adapters, served_models, shell_line, vllm_command


def _tunelab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TUNELAB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tunelab", *args], capture_output=True, text=True, timeout=180,
                          env=env, check=False)  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path, varied_dir: Path, adapter_dirs: tuple[Path, Path]) -> Path:
    """A finished run as the engine leaves it: config.json naming the base, the adapter in output/."""
    run = tmp_path / "job-0123456789ab"
    shutil.copytree(adapter_dirs[0], run / "output")
    (run / "config.json").write_text(json.dumps({"model": str(varied_dir)}))
    return run


def test_a_run_is_served_as_its_name_beside_its_base_and_the_extra_adapters(run_dir: Path, varied_dir: Path,
                                                                             adapter_dirs: tuple[Path, Path]) -> None:  # fmt: skip
    served = served_models(run_dir, parse_adapters([f"beta={adapter_dirs[1]}"]))
    assert served.ids() == ["base", "job-0123456789ab", "beta"] and served.default == "job-0123456789ab"
    assert served.location("base") == str(varied_dir.resolve())
    assert served.location("ft:varied:job-0123456789ab:job-0123456789ab") == str(run_dir.resolve())
    assert served_models(run_dir / "output", {}, name="support").ids() == ["base", "support"]
    assert served_models(varied_dir, {}).ids() == ["base"]
    with pytest.raises(NotFound) as caught:
        served.location("gamma")
    assert "'base', 'job-0123456789ab', 'beta'" in caught.value.message and "--adapter" in caught.value.hint


def test_bad_adapter_options_are_reported_together(tmp_path: Path, adapter_dirs: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_adapters(["nameless", f"a={adapter_dirs[0]}", f"a={adapter_dirs[1]}", f"b={tmp_path}", "base=x"])
    message = caught.value.message
    assert "'nameless' is not NAME=PATH" in message and "'a' is given twice" in message
    assert f"{tmp_path} is not a PEFT adapter folder" in message and "'base'" in message


def test_the_vllm_command_serves_the_same_names(run_dir: Path, varied_dir: Path, adapter_dirs: tuple[Path, Path]) -> None:
    served = served_models(run_dir, parse_adapters([f"beta={adapter_dirs[1]}"]))
    argv = vllm_command(served, port=8001)
    assert argv == [
        "vllm", "serve", str(varied_dir.resolve()), "--served-model-name", "base", "--host", "127.0.0.1",
        "--port", "8001", "--enable-lora", "--max-loras", "2", "--max-lora-rank", "8", "--lora-modules",
        f"job-0123456789ab={run_dir.resolve() / 'output'}", f"beta={adapter_dirs[1].resolve()}",
    ]  # fmt: skip  (vLLM reads the adapter folder itself, not the run directory)
    assert vllm_command(ServedModels("base", "/m", {})) == ["vllm", "serve", "/m", "--served-model-name", "base",
                                                             "--host", "127.0.0.1", "--port", "8000"]  # fmt: skip
    assert shell_line(["vllm", "serve", "/a b"]) == "vllm serve '/a b'"


def test_ft_ids_parse_in_one_place() -> None:
    tuned = parse_tuned_id("ft:smollm2-135m-instruct:support:bot:job-1a2b")
    assert tuned is not None and (tuned.base, tuned.name, tuned.job_id) == ("smollm2-135m-instruct", "support:bot", "job-1a2b")
    assert parse_tuned_id("smollm2-135m-instruct") is None and parse_tuned_id("ft:a:b") is None
    assert parse_tuned_id("ft::x:job") is None


def test_serve_model_errors_are_one_line_on_the_terminal(tmp_path: Path, varied_dir: Path) -> None:
    done = _tunelab(tmp_path, "serve-model", str(varied_dir), "--adapter", f"x={tmp_path}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"Error [invalid_input]: --adapter: {tmp_path} is not a PEFT adapter folder" in done.stderr
    missing = _tunelab(tmp_path, "serve-model", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    quantize = _tunelab(tmp_path, "serve-model", str(varied_dir), "--quantize", "int4")
    assert quantize.returncode == 1 and "--quantize int8" in quantize.stderr


def test_print_vllm_prints_the_command(tmp_path: Path, run_dir: Path, varied_dir: Path) -> None:
    done = _tunelab(tmp_path, "serve-model", str(run_dir), "--print-vllm", "--port", "9000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"vllm serve {varied_dir.resolve()} --served-model-name base --host 127.0.0.1 "
                                   f"--port 9000 --enable-lora --max-loras 1 --max-lora-rank 8 "
                                   f"--lora-modules job-0123456789ab={run_dir.resolve() / 'output'}")  # fmt: skip


def test_int8_quantizes_the_frozen_layers_and_keeps_adapters(varied_dir: Path, adapter_dirs: tuple[Path, Path]) -> None:
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

    from tunelab.models.generation import Sampling
    from tunelab.models.loading import ModelParts
    from tunelab.serving.batching import Engine

    engine = Engine(ModelParts(varied_dir, None, varied_dir), precision="fp32")
    alpha = engine.adapter(adapter_dirs[0])[0]
    ids = list(engine.tokenizer("Give three tips", add_special_tokens=False)["input_ids"])
    greedy = Sampling(max_new_tokens=8)
    before = [engine.scheduler.submit(ids, greedy, adapter=a).result().token_ids for a in (None, alpha)]
    engine.quantize()
    kinds = {type(m) for n, m in engine.model.named_modules() if n.endswith(("q_proj.base_layer", "down_proj.base_layer"))}
    assert kinds == {QuantizedLinear}
    lora = [m for n, m in engine.model.named_modules() if n.endswith(f"lora_A.{alpha}")]
    assert lora and all(type(m) is torch.nn.Linear for m in lora)  # the adapters stay fp32
    after = [engine.scheduler.submit(ids, greedy, adapter=a).result().token_ids for a in (None, alpha)]
    assert all(len(t) == 8 or t[-1] in engine.stop_ids for t in after)
    assert after[0] != after[1]  # the adapter still changes the answer on the int8 base
    assert before[0][:1] == after[0][:1]  # the first greedy token survives int8 rounding
    with pytest.raises(InvalidInput, match="after quantization"):
        engine.adapter(adapter_dirs[1])
