"""The generated training script runs on its own (no tunelab) and trains: the loss falls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.errors import InvalidInput
from tunelab.export.script import render_script
from tunelab.training.config import load_config_dict


def _blocked_tunelab(folder: Path) -> dict[str, str]:
    """An environment in which ``import tunelab`` fails, to prove the script does not need it."""
    folder.mkdir()
    (folder / "tunelab.py").write_text("raise ImportError('the generated script must not import tunelab')\n")
    return {**os.environ, "PYTHONPATH": str(folder)}


def test_script_from_a_run_trains_without_tunelab(tiny_run: Path, tmp_path: Path) -> None:
    config = load_config_dict(json.loads((tiny_run / "config.json").read_text()))
    config = config.model_copy(update={"max_steps": 8, "learning_rate": 1e-2, "logging_steps": 1})
    script = tmp_path / "train.py"
    script.write_text(render_script(config, output_dir=str(tmp_path / "trained")))
    text = script.read_text()
    assert "import tunelab" not in text and "from tunelab" not in text
    assert "# not reproduced: packing" in text  # what the script does differently is said in it
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          env=_blocked_tunelab(tmp_path / "block"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    losses = [json.loads(line)["loss"] for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(losses) == 8
    assert losses[-1] < losses[0] - 0.2, losses
    assert (tmp_path / "trained" / "adapter_config.json").exists()
    adapter = json.loads((tmp_path / "trained" / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16


def test_trl_script_from_a_run_trains_without_tunelab(tiny_run: Path, tmp_path: Path) -> None:
    """The TRL variant: SFTTrainer with the job's LoRA, schedule and steps, assistant-only loss, packing kept."""
    pytest.importorskip("trl")
    config = load_config_dict(json.loads((tiny_run / "config.json").read_text()))
    config = config.model_copy(update={"max_steps": 8, "learning_rate": 1e-2, "logging_steps": 1,
                                       "scheduler": "linear", "gradient_accumulation_steps": 2})  # fmt: skip
    assert config.packing  # the run packs, so the TRL script must too
    script = tmp_path / "train_trl.py"
    script.write_text(render_script(config, framework="trl", output_dir=str(tmp_path / "trained"),
                                    file_name=script.name))  # fmt: skip
    text = script.read_text()
    assert "import tunelab" not in text and "from tunelab" not in text
    assert "from trl import SFTConfig, SFTTrainer" in text and "# not reproduced: packing" not in text
    assert "'packing': True" in text and "'scheduler': 'linear'" in text and "'gradient_accumulation_steps': 2" in text
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          env=_blocked_tunelab(tmp_path / "block"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logged = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [row["step"] for row in logged] == list(range(1, 9))  # max_steps counts optimizer steps, as in tunelab
    losses = [row["loss"] for row in logged]
    assert losses[-1] < losses[0] - 0.2, losses
    assert logged[-1]["learning_rate"] < logged[0]["learning_rate"]  # the linear schedule decays
    adapter = json.loads((tmp_path / "trained" / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16 and adapter["task_type"] == "CAUSAL_LM"
    assert (tmp_path / "trained" / "tokenizer_config.json").exists()


def test_trl_script_masks_the_prompt(tiny_run: Path, tmp_path: Path) -> None:
    """The completion mask covers the assistant reply only, the same tokens tunelab trains on."""
    pytest.importorskip("trl")
    from transformers import AutoTokenizer

    from tunelab.datasets.records import Record
    from tunelab.training.encoding import IGNORE, encode_record

    config = load_config_dict(json.loads((tiny_run / "config.json").read_text()))
    script = tmp_path / "train_trl.py"
    script.write_text(render_script(config, framework="trl"))
    messages = [{"role": "user", "content": "Say the number 3."}, {"role": "assistant", "content": "The number is 3."}]
    probe = ("import json, runpy, sys; from transformers import AutoTokenizer; ns = runpy.run_path(sys.argv[1]); "
             "print(json.dumps(ns['encode'](AutoTokenizer.from_pretrained(sys.argv[2]), json.loads(sys.argv[3]))))")
    done = subprocess.run([sys.executable, "-c", probe, str(script), config.model, json.dumps(messages)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    example = json.loads(done.stdout.splitlines()[-1])
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    reply = tokenizer.decode([t for t, m in zip(example["input_ids"], example["completion_mask"], strict=True) if m])
    assert "The number is 3." in reply and "Say the number" not in reply
    ours = encode_record(Record.model_validate({"messages": messages}), tokenizer, system_prompt=config.system_prompt,
                         train_on_prompt=config.train_on_prompt, max_length=config.max_length)  # fmt: skip
    assert example["input_ids"] == ours.input_ids
    assert example["completion_mask"] == [int(label != IGNORE) for label in ours.labels]


def test_unsupported_requests_are_clear(tiny_run: Path) -> None:
    config = load_config_dict(json.loads((tiny_run / "config.json").read_text()))
    with pytest.raises(InvalidInput, match="pytorch"):
        render_script(config, framework="pytorch")
    with pytest.raises(InvalidInput, match="ia3"):
        render_script(config.model_copy(update={"method": "ia3"}))
    with pytest.raises(InvalidInput, match="parquet"):
        render_script(config.model_copy(update={"dataset": "rows.parquet"}))


def test_cli_export_script_from_a_yaml_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"{i}"}]}
            for i in range(8)]  # fmt: skip
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "job.yaml").write_text(f"model: {tiny_model_dir}\ndataset: chat.jsonl\nmethod: dora\nmax_steps: 3\n")
    cli = [sys.executable, "-c", "from tunelab.cli.main import run; run()", "export", "script"]
    done = subprocess.run([*cli, str(tmp_path / "job.yaml"), "-o", str(tmp_path / "t.py")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training script written to" in done.stdout
    text = (tmp_path / "t.py").read_text()
    assert f"'model': '{tiny_model_dir}'" in text and "'method': 'dora'" in text
    assert f"'dataset': '{tmp_path / 'chat.jsonl'}'" in text  # relative to the YAML file, as `tunelab train` reads it
    again = subprocess.run([*cli, str(tmp_path / "job.yaml"), "-o", str(tmp_path / "t.py")],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 1 and "Error [export_target_exists]" in again.stderr
