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


@dataclass
class EncodedData:
    """Tokenised train and eval examples plus what happened on the way."""

    train: list[Encoded]
    eval: list[Encoded]
    eval_records: list[Record]
    stats: dict[str, Any] = field(default_factory=dict)


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


def split_records(records: list[Record], config: TrainConfig) -> tuple[list[Record], list[Record]]:
    """Deterministic train/eval split (or the separate eval file)."""
    if config.max_rows:
        records = records[: config.max_rows]
    if config.eval_dataset:
        evals = read_records(config.eval_dataset, config.dataset_format, config.dataset_mapping)
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


def encode_all(records: list[Record], tokenizer: Any, config: TrainConfig) -> tuple[list[Encoded], dict[str, int]]:
    """Encode records; drop those without targets; count truncations."""
    out: list[Encoded] = []
    stats = {"rows": len(records), "truncated": 0, "dropped_no_targets": 0, "tokens": 0, "target_tokens": 0}
    for record in records:
        if record.kind == "preference" and not record.chosen:
            stats["dropped_no_targets"] += 1
            continue
        enc = encode_record(
            record,
            tokenizer,
            system_prompt=config.system_prompt,
            train_on_prompt=config.train_on_prompt,
            max_length=config.max_length,
        )
        stats["truncated"] += int(enc.truncated)
        targets = enc.target_tokens
        if targets == 0:
            stats["dropped_no_targets"] += 1
            continue
        stats["tokens"] += len(enc.input_ids)
        stats["target_tokens"] += targets
        out.append(enc)
    return out, stats


def prepare_data(config: TrainConfig, tokenizer: Any) -> EncodedData:
    """Read, split and encode; fail clearly if nothing is left to train on."""
    records = read_records(config.dataset, config.dataset_format, config.dataset_mapping)
    train_records, eval_records = split_records(records, config)
    train, train_stats = encode_all(train_records, tokenizer, config)
    evals, eval_stats = encode_all(eval_records, tokenizer, config)
    if not train:
        raise DatasetError(
            "No training example has any token to learn from after tokenisation.",
            hint="Check that rows have assistant replies, or set train_on_prompt: true, "
            "or raise max_length.",
        )
    return EncodedData(train, evals, eval_records, {"train": train_stats, "eval": eval_stats})
