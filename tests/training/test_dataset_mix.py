"""`dataset_mix`: more datasets mixed into the training rows, each with an optional share.

The quick start mixes general instructions into its identity rows so the model
keeps its general skills (docs/evaluation.md); these tests pin the rules: the
shares, the seeded sample, the eval split taken from `dataset` alone, paths
relative to the config file, preflight naming a missing file, and the API's
path policy applying to every mixed-in file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tunelab.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _rows(n: int, tag: str) -> list[dict[str, str]]:
    return [
        {"instruction": f"{tag} question {i}", "input": "", "output": f"{tag} answer {i}"}
        for i in range(n)
    ]


@pytest.fixture
def general_file(tmp_path: Path) -> Path:
    path = tmp_path / "general.json"
    path.write_text(json.dumps(_rows(100, "general")))
    return path


def test_shares_must_leave_room_for_the_dataset(
    make_config: Callable[..., Any], general_file: Path
) -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        make_config(
            dataset_mix=[
                {"dataset": str(general_file), "share": 0.6},
                {"dataset": "x.json", "share": 0.4},
            ]
        )
    with pytest.raises(ValueError, match=r"`dataset_mix.0.dataset` is required"):
        make_config(dataset_mix=[{"share": 0.2}])
    with pytest.raises(ValueError, match="less than 1"):
        make_config(dataset_mix=[{"dataset": str(general_file), "share": 1.0}])


def test_a_share_is_a_seeded_sample_of_the_mixed_total(
    make_config: Callable[..., Any], general_file: Path
) -> None:
    from tunelab.training.data import mix_records

    config = make_config(dataset_mix=[{"dataset": str(general_file), "share": 0.25}])
    mixed, report = mix_records(config, 30)
    assert len(mixed) == 10  # 30 task rows are 75% of 40
    assert report == [{"dataset": str(general_file), "share": 0.25, "rows": 10}]
    again, _ = mix_records(config, 30)
    assert [r.messages for r in again] == [r.messages for r in mixed]  # same seed, same rows
    other, _ = mix_records(make_config(seed=7, dataset_mix=config.dataset_mix), 30)
    assert [r.messages for r in other] != [r.messages for r in mixed]
    numbers = [int(r.messages[0].content.split()[-1]) for r in mixed]
    assert numbers == sorted(numbers)  # file order kept
    everything, report = mix_records(make_config(dataset_mix=[{"dataset": str(general_file)}]), 30)
    assert len(everything) == 100 and report[0]["rows"] == 100
    capped, report = mix_records(
        make_config(dataset_mix=[{"dataset": str(general_file), "share": 0.9}]), 30
    )
    assert len(capped) == 100  # 270 wanted, the file has 100


def test_the_eval_split_comes_from_the_dataset_alone(
    make_config: Callable[..., Any], general_file: Path, tiny_model_dir: Path
) -> None:
    from tunelab.models.loading import load_tokenizer
    from tunelab.training.data import prepare_data

    tokenizer = load_tokenizer(tiny_model_dir)
    plain = prepare_data(make_config(), tokenizer)
    mixed = prepare_data(
        make_config(dataset_mix=[{"dataset": str(general_file), "share": 0.5}]), tokenizer
    )
    assert [r.messages for r in mixed.eval_records] == [r.messages for r in plain.eval_records]
    assert len(mixed.train) == 2 * len(plain.train)  # half of the training rows are general ones
    assert mixed.stats["mix"] == [
        {"dataset": str(general_file), "share": 0.5, "rows": len(plain.train)}
    ]
    assert "mix" not in plain.stats


def test_the_quick_start_mixes_files_next_to_it() -> None:
    from tunelab.cli.train import load_train_config
    from tunelab.training.data import mix_records, read_records, split_records

    config = load_train_config(EXAMPLES / "identity-lora.yaml", [])
    assert [Path(m.dataset) for m in config.dataset_mix] == [
        (EXAMPLES / "data" / "alpaca_en_demo.json").resolve()
    ]
    assert (
        Path(config.eval_dataset or "") == (EXAMPLES / "data" / "identity_heldout.json").resolve()
    )
    train, _ = split_records(read_records(config.dataset), config)
    mixed, _ = mix_records(config, len(train))
    assert 0 < len(mixed) < len(train)  # a share of general rows, fewer than the identity rows
    held_out = {r.messages[0].content for r in read_records(config.eval_dataset or "")}
    assert len(held_out) >= 12 and not held_out & {r.messages[0].content for r in train}


def test_preflight_names_a_missing_mixed_in_file(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    from tunelab.training.preflight import _dataset_issues

    issues = _dataset_issues(make_config(dataset_mix=[{"dataset": str(tmp_path / "gone.json")}]))
    assert [(i.code, i.field) for i in issues] == [("dataset_missing", "dataset_mix.0.dataset")]


def test_a_job_admits_mixed_in_files_like_its_dataset(
    session: Session, general_file: Path, tmp_path: Path
) -> None:
    from tunelab.jobs.paths import NO_PATHS, PathAccess
    from tunelab.jobs.trainconfig import admit_job_config, build_train_config

    dataset = tmp_path / "task.json"
    dataset.write_text(json.dumps(_rows(20, "task")))
    config = {"model": "smollm2-135m-instruct", "dataset": str(dataset),
              "hyperparameters": {"dataset_mix": [{"dataset": str(general_file), "share": 0.2}]}}  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        admit_job_config(session, config, NO_PATHS)
    assert refused.value.code == "path_not_allowed"
    other = tmp_path / "other"
    other.mkdir()
    inside_only = PathAccess((other.resolve(),), relative=False)
    allowed_dataset = other / "task.json"
    allowed_dataset.write_bytes(dataset.read_bytes())
    with pytest.raises(ConfigError, match=r"dataset_mix\.0\.dataset"):
        admit_job_config(session, {**config, "dataset": str(allowed_dataset)}, inside_only)
    admitted = admit_job_config(session, config, PathAccess((tmp_path.resolve(),), relative=False))
    train = build_train_config(
        session, admitted, paths=PathAccess((tmp_path.resolve(),), relative=False)
    )
    assert train["dataset_mix"] == [{"dataset": str(general_file.resolve()), "share": 0.2}]
