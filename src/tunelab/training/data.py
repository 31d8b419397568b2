"""Load the dataset, hold out the eval split and tokenise both, with statistics.

Reading files is the datasets part's job (``tunelab.datasets.iter_records`` and
``load_version``); this module only asks it for ``Record`` objects, splits
deterministically by seed, and counts what tokenisation did (truncated rows,
rows without any trainable token) so the engine can report it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.datasets.records import Record
from tunelab.errors import DatasetError, NotFound, TunelabError
from tunelab.training.config import TrainConfig
from tunelab.training.encoding import Encoded, encode_record
from tunelab.training.task_data import encode_labeled, encode_seq2seq, infer_labels
from tunelab.training.tasks import get as task_spec


@dataclass
class EncodedData:
    """Tokenised train and eval examples plus what happened on the way."""

    train: list[Any]  # Encoded, or LabeledExample for classification and regression
    eval: list[Any]
    eval_records: list[Record]
    stats: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # class names in id order (classification)


def read_records(value: str, fmt: str | None = None, mapping: dict[str, str] | None = None) -> list[Record]:
    """All records of a dataset file, or of a stored dataset version id."""
    from tunelab.datasets import iter_records, load_version

    path = Path(value).expanduser()
    try:
        if path.exists():
            records = list(iter_records(path, format=fmt, mapping=mapping))
        elif "/" in value or "\\" in value or path.suffix:
            raise DatasetError(
                f"Dataset {value!r} not found.",
                hint="Give a path to a dataset file (relative paths are resolved from the config "
                "file's folder) or a stored dataset version id.",
            )
        else:
            records = list(load_version(value).iter_records())
    except NotFound as exc:
        raise DatasetError(
            f"Dataset {value!r} not found: it is neither a file nor a stored dataset version.",
            hint="Give a path to a dataset file or an id from `tunelab datasets list`.",
        ) from exc
    except TunelabError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DatasetError(f"Cannot read dataset {value}: {exc}", hint="Check the file's format.") from exc
    if not records:
        raise DatasetError(f"Dataset {value} has no rows.", hint="Point at a file with at least one row.")
    return records


def dataset_format(config: TrainConfig, task: str) -> str | None:
    """The format to read: the config's, else the task's (labeled rows for classifiers), else detected."""
    return config.dataset_format or task_spec(task).dataset_format


def split_records(
    records: list[Record], config: TrainConfig, fmt: str | None = None
) -> tuple[list[Record], list[Record]]:
    """Deterministic train/eval split (or the separate eval file)."""
    if config.max_rows:
        records = records[: config.max_rows]
    if config.eval_dataset:
        evals = read_records(config.eval_dataset, fmt or config.dataset_format, config.dataset_mapping)
        return records, evals[: config.eval_max_rows]
    if config.eval_split <= 0 or len(records) < 2:
        return records, []
    order = list(range(len(records)))
    random.Random(config.seed).shuffle(order)
    n_eval = min(max(1, round(len(records) * config.eval_split)), config.eval_max_rows, len(records) - 1)
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [records[i] for i in sorted(held)]
    return train, evals


def mix_records(config: TrainConfig, n_train: int, fmt: str | None = None) -> tuple[list[Record], list[dict[str, Any]]]:
    """The ``dataset_mix`` rows to add to ``n_train`` training rows, and what was taken from each entry.

    An entry with a ``share`` gives ``share`` of the mixed total (a sample seeded
    by ``seed``, in file order; every row when it has fewer), one without gives
    all its rows. Only training rows are mixed: the eval split measures the
    task alone, and the automatic evaluation after a job holds out the same rows.
    """
    if not config.dataset_mix:
        return [], []
    sources = [(entry, read_records(entry.dataset, fmt)) for entry in config.dataset_mix]
    whole = sum(len(rows) for entry, rows in sources if entry.share is None)
    total = (n_train + whole) / (1.0 - sum(entry.share or 0.0 for entry in config.dataset_mix))
    mixed: list[Record] = []
    report: list[dict[str, Any]] = []
    for index, (entry, rows) in enumerate(sources):
        wanted = len(rows) if entry.share is None else min(len(rows), max(1, round(entry.share * total)))
        if wanted < len(rows):
            order = list(range(len(rows)))
            random.Random(config.seed + 1 + index).shuffle(order)
            rows = [rows[i] for i in sorted(order[:wanted])]
        mixed.extend(rows)
        report.append({"dataset": entry.dataset, "share": entry.share, "rows": len(rows)})
    return mixed, report


def _encode(record: Record, tokenizer: Any, config: TrainConfig, task: str, labels: list[str], row: int) -> Any:
    """One record as the task trains on it."""
    if task == "seq2seq":
        return encode_seq2seq(record, tokenizer, system_prompt=config.system_prompt, max_length=config.max_length)
    if task_spec(task).labeled:
        return encode_labeled(record, tokenizer, task=task, labels=labels, max_length=config.max_length, row=row)
    return encode_record(
        record,
        tokenizer,
        system_prompt=config.system_prompt,
        train_on_prompt=config.train_on_prompt,
        max_length=config.max_length,
    )


def encode_all(
    records: list[Record], tokenizer: Any, config: TrainConfig, task: str = "causal_lm", labels: list[str] | None = None
) -> tuple[list[Any], dict[str, int]]:
    """Encode records; drop those without targets; count truncations."""
    out: list[Encoded] = []
    stats = {"rows": len(records), "truncated": 0, "dropped_no_targets": 0, "tokens": 0, "target_tokens": 0}
    for row, record in enumerate(records):
        if record.kind == "preference" and not record.chosen:
            stats["dropped_no_targets"] += 1
            continue
        enc = _encode(record, tokenizer, config, task, labels or [], row)
        stats["truncated"] += int(enc.truncated)
        targets = enc.target_tokens
        if targets == 0:
            stats["dropped_no_targets"] += 1
            continue
        stats["tokens"] += len(enc.input_ids)
        stats["target_tokens"] += targets
        out.append(enc)
    return out, stats


def prepare_data(
    config: TrainConfig, tokenizer: Any, task: str = "causal_lm", labels: list[str] | None = None
) -> EncodedData:
    """Read, split and encode; fail clearly if nothing is left to train on.

    A classifier's label set is inferred from every row of the dataset unless
    ``labels`` (a resumed run's saved set) is given.
    """
    fmt = dataset_format(config, task)
    records = read_records(config.dataset, fmt, config.dataset_mapping)
    if task_spec(task).labeled and not labels:
        labels = infer_labels(records, task)  # file order, so a bad row is named by its row number
    train_records, eval_records = split_records(records, config, fmt)
    mixed, mix_report = mix_records(config, len(train_records), task_spec(task).dataset_format)
    train_records += mixed
    train, train_stats = encode_all(train_records, tokenizer, config, task, labels)
    evals, eval_stats = encode_all(eval_records, tokenizer, config, task, labels)
    if not train:
        raise DatasetError(
            "No training example has any token to learn from after tokenisation.",
            hint="Check that rows have assistant replies, or set train_on_prompt: true, "
            "or raise max_length.",
        )
    stats: dict[str, Any] = {"train": train_stats, "eval": eval_stats}
    if mix_report:
        stats["mix"] = mix_report
    return EncodedData(train, evals, eval_records, stats, labels or [])
