"""The dataset service keeps the store's rows and the version folders consistent, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import ConfigError, DatasetError, InvalidInput, NotFound
from tunelab.jobs import datasets as dataset_service
from tunelab.jobs import service
from tunelab.jobs.trainconfig import build_train_config
from tunelab.settings import get_settings
from tunelab.store import catalog


def _folders() -> list[str]:
    """Every entry of the datasets folder, temporary ones included."""
    root = get_settings().datasets_dir
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _texts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_ingest_writes_files_then_registers_them(session: Session, dataset_file: Path) -> None:
    dataset, version = dataset_service.ingest(session, dataset_file, name="numbers", description="demo")
    assert dataset.name == "numbers" and dataset.latest_version_id == version.id
    assert version.format == "alpaca" and version.num_rows == 40 and version.kind == "chat"
    assert Path(version.path).is_file() and _folders() == [version.id]
    assert dataset_service.resolve(session, "numbers") == version.path
    assert dataset_service.resolve(session, version.id) == version.path
    assert dataset_service.resolve(session, dataset.id) == version.path
    assert dataset_service.source_bytes(session, dataset) == dataset_file.stat().st_size
    records, total = dataset_service.read_rows(session, "numbers", offset=1, limit=2)
    assert total == 40 and [r.messages[0].content for r in records] == ["Say the number 1.", "Say the number 2."]
    # the same file again: nothing new on disk, the same version
    again = dataset_service.ingest(session, dataset_file, name="numbers")[1]
    assert again.id == version.id and _folders() == [version.id]
    assert [v.id for v in dataset_service.list_versions(session, "numbers")] == [version.id]


def test_bad_input_leaves_stored_state_as_it_was(session: Session, tmp_path: Path, dataset_file: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        dataset_service.ingest(session, bad, name="broken")
    assert info.value.code == "bad_json" and info.value.hint
    assert dataset_service.list_datasets(session)[1] == 0 and _folders() == []
    # a bad file under a known name changes nothing about that dataset
    _, good = dataset_service.ingest(session, dataset_file, name="numbers")
    with pytest.raises(DatasetError):
        dataset_service.ingest(session, bad, name="numbers")
    assert dataset_service.get(session, "numbers").latest_version_id == good.id
    assert _folders() == [good.id]


def test_a_failed_registration_leaves_nothing_half_registered(
    session: Session, dataset_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(catalog, "register_dataset_version", refuse)
    with pytest.raises(RuntimeError):
        dataset_service.ingest(session, dataset_file, name="numbers")
    monkeypatch.undo()
    assert dataset_service.list_datasets(session)[1] == 0
    assert _folders() == []  # the folder written before the row was removed again


def test_repair_makes_a_new_registered_version(session: Session, tmp_path: Path) -> None:
    source = _texts(tmp_path / "t.jsonl", ["  padded  ", "same", "same", "other"])
    _, first = dataset_service.ingest(session, source, name="texts")
    repaired, report = dataset_service.repair(session, "texts")
    assert repaired.parent_id == first.id and repaired.num_rows == 3 and report.duplicates_removed
    assert dataset_service.get(session, "texts").latest_version_id == repaired.id
    assert [v.id for v in dataset_service.list_versions(session, "texts")] == [first.id, repaired.id]
    assert sorted(_folders()) == sorted([first.id, repaired.id])
    assert Path(first.path).read_text(encoding="utf-8").count("\n") == 4  # the parent is untouched
    rows, _ = dataset_service.read_rows(session, "texts")
    assert rows[0].text == "padded"
    with pytest.raises(NotFound):
        dataset_service.repair(session, "texts", version="ds-nope")


def test_delete_removes_rows_then_files(session: Session, tmp_path: Path) -> None:
    _texts(tmp_path / "t.jsonl", ["a", "a", "b"])
    dataset_service.ingest(session, tmp_path / "t.jsonl", name="texts")
    dataset_service.repair(session, "texts")
    assert len(_folders()) == 2
    dataset_service.delete(session, "texts")
    assert dataset_service.list_datasets(session)[1] == 0 and _folders() == []
    with pytest.raises(ConfigError) as info:
        dataset_service.resolve(session, "texts")
    assert "tunelab datasets import" in info.value.hint
    with pytest.raises(NotFound):
        dataset_service.delete(session, "texts")


def test_the_same_content_under_two_names_is_stored_once_and_kept_while_used(
    session: Session, dataset_file: Path
) -> None:
    _, version = dataset_service.ingest(session, dataset_file, name="first")
    dataset_service.ingest(session, dataset_file, name="second")
    assert [v.id for v in dataset_service.list_versions(session, "second")] == [version.id]
    assert dataset_service.get_version(session, "second").id == version.id
    dataset_service.delete(session, "first")
    assert _folders() == [version.id]  # "second" still trains on it
    assert dataset_service.resolve(session, "second") == version.path
    assert [v.id for v in dataset_service.list_versions(session, "second")] == [version.id]
    dataset_service.delete(session, "second")
    assert _folders() == []


def test_resolve_refuses_what_it_cannot_find(session: Session, dataset_file: Path) -> None:
    assert dataset_service.resolve(session, str(dataset_file)) == str(dataset_file.resolve())
    for missing in ("no-such-dataset", "/no/such/file.jsonl"):
        with pytest.raises(ConfigError) as info:
            dataset_service.resolve(session, missing)
        assert info.value.hint and info.value.details == {"dataset": missing}
    _, version = dataset_service.ingest(session, dataset_file, name="numbers")
    Path(version.path).unlink()  # the files went missing behind the store's back
    with pytest.raises(ConfigError) as info:
        dataset_service.resolve(session, "numbers")
    assert "missing" in info.value.message and "import the source file again" in info.value.hint
    dataset_service.ingest(session, dataset_file, name="numbers")  # what the hint says to do
    assert dataset_service.resolve(session, "numbers") == version.path and Path(version.path).is_file()
    assert dataset_service.is_stored_reference("numbers")
    assert not dataset_service.is_stored_reference(str(dataset_file))
    assert not dataset_service.is_stored_reference("data/train.jsonl")


def test_a_job_naming_a_stored_dataset_trains_on_its_file(
    session: Session, dataset_file: Path, make_config: Callable[..., dict[str, Any]]
) -> None:
    _, version = dataset_service.ingest(session, dataset_file, name="numbers")
    job = service.create_job(session, make_config(dataset="numbers", eval_dataset=version.id), submit=False)
    assert job.config["dataset"] == "numbers"  # the job keeps the name; the run gets the file
    train = build_train_config(session, job.config, name=job.id)
    assert train["dataset"] == version.path and train["eval_dataset"] == version.path
    with pytest.raises(ConfigError) as info:
        service.create_job(session, make_config(dataset="never-imported"))
    assert "never-imported" in info.value.message


def test_unicode_names_and_tags_on_sqlite_and_postgres(session: Session, dataset_file: Path) -> None:
    """Labels of any script are stored as given (PostgreSQL's varchar(200) counts characters), tags filter."""
    long_cjk = "数" * 200  # 200 characters, 600 UTF-8 bytes: fits the column
    for name, tags in (("Customer Support Q&A", ["support", "en"]), ("客服数据", ["support", "zh"]),
                       (long_cjk, [])):  # fmt: skip
        dataset, version = dataset_service.ingest(session, dataset_file, name=name, tags=tags)
        assert dataset.name == name and dataset.tags == tags
        assert dataset_service.resolve(session, name) == version.path
    assert _folders() == [version.id]  # one content-addressed folder, no folder named after a dataset
    dataset_service.ingest(session, dataset_file, name="客服数据", tags=["zh", "v2"])
    session.expire_all()
    assert catalog.get_dataset(session, "客服数据").tags == ["support", "zh", "v2"]
    support, total = dataset_service.list_datasets(session, tag="support")
    assert total == 2 and {d.name for d in support} == {"Customer Support Q&A", "客服数据"}
    assert [d.name for d in dataset_service.list_datasets(session, tag="v2")[0]] == ["客服数据"]
    assert dataset_service.list_datasets(session)[1] == 3
    # a job names the dataset by its label
    job = service.create_job(session, {"model": "tiny", "dataset": "Customer Support Q&A", "hyperparameters": {}},
                             name="支持 (v1)", tags=["guide"], submit=False)  # fmt: skip
    assert job.name == "支持 (v1)" and job.tags == ["guide"]
    assert build_train_config(session, job.config)["dataset"] == version.path
    with pytest.raises(InvalidInput, match="control character"):
        dataset_service.ingest(session, dataset_file, name="new\nline")
    with pytest.raises(InvalidInput, match="at most 200"):
        dataset_service.ingest(session, dataset_file, name=long_cjk + "x")
