"""``tunelab datasets`` commands through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli.main import app

runner = CliRunner()


def test_inspect_prints_format_quality_and_preview(shared_datasets: Path) -> None:
    result = runner.invoke(app, ["datasets", "inspect", str(shared_datasets / "glaive_toolcall_en_demo.json")])
    assert result.exit_code == 0, result.output
    assert "format: sharegpt" in result.output
    assert "Quality report" in result.output and "duplicate_rows" in result.output
    assert "[tool call] search_recipes" in result.output  # rich markup escaped
    assert "approximate" in result.output


def test_inspect_json_and_exit_code_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p", "reply": "r"}\n{"prompt": "p2", "reply": "r2"}\n', encoding="utf-8")
    failed = runner.invoke(app, ["datasets", "inspect", str(path), "--format", "prompt_completion", "--json"])
    assert failed.exit_code == 1
    report = json.loads(failed.output)
    assert report["issues"][0]["code"] == "missing_column" and report["issues"][0]["line"] == 1
    mapped = runner.invoke(app, ["datasets", "inspect", str(path), "--map", "reply=completion", "--json"])
    assert mapped.exit_code == 0, mapped.output
    assert json.loads(mapped.output)["format"] == "prompt_completion"
    table = runner.invoke(app, ["datasets", "inspect", str(path), "--format", "prompt_completion"])
    assert table.exit_code == 1 and "missing_column" in table.output and "--map" in table.output


def test_repair_import_and_list(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a "}\n{"text": "a"}\n{"text": "  "}\n', encoding="utf-8")
    out = tmp_path / "fixed.jsonl"
    repaired = runner.invoke(app, ["datasets", "repair", str(path), "-o", str(out)])
    assert repaired.exit_code == 0, repaired.output
    assert "row 1 dropped: exact duplicate of row 0" in repaired.output
    assert "empty rows dropped: 2" in repaired.output
    assert out.read_text(encoding="utf-8") == '{"text":"a"}\n'
    imported = runner.invoke(app, ["datasets", "import", str(out)])
    assert imported.exit_code == 0, imported.output
    version_id = imported.output.split()[0]
    assert version_id.startswith("ds-")
    listed = runner.invoke(app, ["datasets", "list"])
    assert version_id in listed.output and "fixed.jsonl" in listed.output


def test_inspect_with_tokenizer(shared_datasets: Path, tiny_model_dir: Path) -> None:
    result = runner.invoke(app, ["datasets", "inspect", str(shared_datasets / "identity.json"),
                                 "--tokenizer", str(tiny_model_dir), "--max-length", "20", "--json"])  # fmt: skip
    report = json.loads(result.output)
    tokens = report["quality"]["tokens"]
    assert tokens["approximate"] is False and tokens["tokenizer"] == str(tiny_model_dir)
    assert report["preview"][0]["rendered"].startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert "<|im_start|>user\nhi<|im_end|>" in report["preview"][0]["rendered"]
    assert report["quality"]["over_max_length"] > 0 and report["issue_counts"]["over_max_length"] > 0


def test_train_config_naming_a_stored_dataset_reads_its_file(tmp_path: Path) -> None:
    from tunelab.cli.train import load_train_config
    from tunelab.errors import ConfigError

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    imported = runner.invoke(app, ["datasets", "import", str(data), "--name", "letters"])
    assert imported.exit_code == 0, imported.output
    version_id = imported.output.split()[0]
    config_file = tmp_path / "train.yaml"
    config_file.write_text("model: some-model\ndataset: letters\n", encoding="utf-8")
    by_name = load_train_config(config_file, [])
    by_version = load_train_config(config_file, [f"dataset={version_id}", f"eval_dataset={version_id}"])
    assert by_name.dataset == by_version.dataset == by_version.eval_dataset
    assert Path(by_name.dataset).parent.name == version_id and Path(by_name.dataset).is_file()
    with pytest.raises(ConfigError) as info:
        load_train_config(config_file, ["dataset=never-imported"])
    assert "tunelab datasets import" in info.value.hint
    assert load_train_config(config_file, [f"dataset={data}"]).dataset == str(data)  # files stay files
