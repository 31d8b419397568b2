"""TrainConfig's one description of its fields feeds the docs, the CLI help and the API's groups.

The docs table is generated (``python -m tunelab.training.config_docs docs/training.md``); the
test below fails as soon as a field changes without the table being rewritten.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from tunelab.training.config import FIELD_GROUPS, LoraSettings, TrainConfig
from tunelab.training.config_docs import (
    END,
    START,
    check_groups,
    field_groups,
    field_table,
    generated_part,
    iter_fields,
    main,
    update_doc,
)

DOC = Path(__file__).parents[2] / "docs" / "training.md"


def _leaf_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            names += _leaf_names(info.annotation, f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_the_docs_table_is_generated_from_trainconfig() -> None:
    assert generated_part(DOC.read_text()) == field_table(), (
        "docs/training.md is stale: run `python -m tunelab.training.config_docs docs/training.md`"
    )


def test_every_field_is_listed_once_with_dotted_sections() -> None:
    names = [f.name for f in iter_fields()]
    assert names == _leaf_names(TrainConfig)
    assert {"lora.r", "lora.dropout", "output.max_new_tokens"} <= set(names)
    table = field_table()
    for name in names:
        assert f"| `{name}` |" in table


def test_defaults_ranges_and_help_come_from_the_model() -> None:
    fields = {f.name: f for f in iter_fields()}
    assert fields["learning_rate"].range == "1e-06 to 0.01"
    assert fields["lora.dropout"].default == format(LoraSettings().dropout, "g")  # not 0.05
    assert fields["batch_size"].default == "8" and fields["batch_size"].range == "1 to 64"
    assert fields["scheduler"].type == "choice" and "cosine_with_restarts" in fields["scheduler"].range
    assert fields["max_rows"].type == "int or none" and fields["max_rows"].range == "≥ 1"
    assert fields["output.eval_prompts"].default == "[]"
    assert fields["batch_size"].help == TrainConfig.model_fields["batch_size"].description


def test_field_groups_name_real_fields_and_cover_every_field() -> None:
    assert check_groups() == []
    groups = field_groups()
    assert [g["name"] for g in groups] == ["run", "main", "advanced", "engine"]
    listed = [name for g in groups for name in g["fields"]]
    assert sorted(listed) == sorted(f.name for f in iter_fields())  # each exactly once
    assert groups[1]["fields"] == list(FIELD_GROUPS["main"])  # main keeps its order


def test_rewriting_a_stale_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# T\n\n{START}\n\n| old | table |\n\n{END}\n\nafter\n")
    assert main(["--check", str(doc)]) == 1
    assert "stale" in capsys.readouterr().out
    assert main([str(doc)]) == 0
    text = doc.read_text()
    assert generated_part(text) == field_table() and text.endswith(f"{END}\n\nafter\n")
    assert update_doc(doc, check=True)
    plain = tmp_path / "plain.md"
    plain.write_text("no markers here\n")
    assert main(["--check", str(plain)]) == 2  # said, not a traceback
    assert "markers" in capsys.readouterr().err


def test_train_help_lists_every_field_with_default_and_range() -> None:
    from typer.testing import CliRunner

    from tunelab.cli.main import app  # registers every command on import

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "learning_rate  float or none, default none, range 1e-06 to 0.01" in out
    for f in iter_fields():
        assert f" {f.name}  " in out, f.name
    assert "lora.r  int, default 16, range 1 to 512" in out
