"""The quality report, built in one streaming pass with flat memory.

Per row it keeps only an 8-byte hash (duplicates are counted at the end by
sorting those hashes) and feeds lengths into fixed-size reservoirs, so the
percentiles of a 1 GB file cost the same memory as those of a 10 MB one.
Means, maxima and counts are exact; medians and p95 are exact up to
``RESERVOIR`` rows and sampled (seeded, reproducible) beyond.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from tunelab.datasets.issues import Issue, issue
from tunelab.datasets.records import Record
from tunelab.datasets.tokens import TokenCounter

RESERVOIR = 65_536


class LengthStats(BaseModel):
    """Distribution of a per-row length."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(0, ge=0, description="Rows measured.")
    mean: float = Field(0.0, ge=0, description="Mean length.")
    median: float = Field(0.0, ge=0, description="Median length.")
    p95: float = Field(0.0, ge=0, description="95th percentile.")
    max: int = Field(0, ge=0, description="Longest row.")


class TokenStats(LengthStats):
    tokenizer: str = Field("", description="Tokenizer used, or the approximation's name.")
    approximate: bool = Field(True, description="True when counted without a real tokenizer.")


class QualityReport(BaseModel):
    """What is in a dataset and how usable it is for training."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(0, ge=0, description="Rows read, valid or not.")
    valid_rows: int = Field(0, ge=0, description="Rows converted into records.")
    invalid_rows: int = Field(0, ge=0, description="Rows with an error.")
    kinds: dict[str, int] = Field(default_factory=dict, description="Records per kind: chat, text, preference.")
    duplicates: int = Field(0, ge=0, description="Records identical to an earlier one.")
    empty_rows: int = Field(0, ge=0, description="Rows with no text at all.")
    role_counts: dict[str, int] = Field(default_factory=dict, description="Messages per role.")
    turns: LengthStats = Field(default_factory=LengthStats, description="Messages per conversation.")
    tokens: TokenStats = Field(default_factory=TokenStats, description="Tokens per record.")
    max_length: int = Field(2048, ge=1, description="The training max_length compared against.")
    over_max_length: int = Field(0, ge=0, description="Records longer than max_length tokens.")
    over_max_length_share: float = Field(0.0, ge=0, le=1, description="Share of records over max_length.")


class Reservoir:
    """Exact count/sum/max plus a seeded uniform sample of at most ``size`` values."""

    def __init__(self, size: int = RESERVOIR, seed: int = 0) -> None:
        self.size = size
        self.sample = array("q")
        self.count = 0
        self.total = 0
        self.max = 0
        self._random = random.Random(seed)

    def add(self, value: int) -> None:
        self.count += 1
        self.total += value
        self.max = max(value, self.max)
        if len(self.sample) < self.size:
            self.sample.append(value)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.size:
                self.sample[slot] = value

    def stats(self) -> dict[str, float | int]:
        if not self.count:
            return {"count": 0}
        ordered = sorted(self.sample)
        n = len(ordered)
        middle = n // 2
        median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        p95 = ordered[min(n - 1, round(0.95 * (n - 1)))]
        return {"count": self.count, "mean": round(self.total / self.count, 2), "median": median,
                "p95": p95, "max": self.max}  # fmt: skip


def empty_turns(record: Record, *, row: int | None = None, line: int | None = None) -> list[Issue]:
    """Warnings for a chat record whose user turn or assistant reply has no text.

    Such a row parses (an empty CSV cell is a valid string) but trains the
    model to answer nothing, or to answer with nothing, so it must not pass
    silently; it stays a warning because a dataset may mean it (an empty
    context turn), and the hint says how to fix it.
    """
    found: list[Issue] = []
    for index, message in enumerate(record.messages or []):
        if message.content.strip() or message.tool_calls:
            continue
        if message.role == "user":
            found.append(issue("empty_prompt", f"turn {index + 1} (user) is empty: the model learns to answer nothing",
                               "Fill in the prompt (the input or instruction column), or delete the row",
                               row=row, line=line))  # fmt: skip
        elif message.role == "assistant":
            found.append(issue("empty_reply", f"turn {index + 1} (assistant) is empty: the row teaches no reply",
                               "Fill in the reply (the output column), or delete the row",
                               row=row, line=line))  # fmt: skip
    return found


def record_key(line: str) -> int:
    """An 8-byte fingerprint of a record's canonical JSON line."""
    return int.from_bytes(hashlib.blake2b(line.encode(), digest_size=8).digest(), "little")


def count_duplicates(keys: array) -> int:
    if len(keys) < 2:
        return 0
    import numpy as np

    ordered = np.sort(np.frombuffer(keys, dtype=np.uint64))
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


class QualityAccumulator:
    """Feed rows one by one; ``report()`` gives the ``QualityReport``."""

    def __init__(self, counter: TokenCounter, max_length: int = 2048) -> None:
        self.counter = counter
        self.max_length = max_length
        self.rows = self.valid = self.empty = self.over = 0
        self.kinds: Counter[str] = Counter()
        self.roles: Counter[str] = Counter()
        self.keys = array("Q")
        self.turns = Reservoir()
        self.tokens = Reservoir()

    def add_problem(self, code: str) -> None:
        self.rows += 1
        if code == "empty_row":
            self.empty += 1

    def add_record(self, record: Record, line: str) -> int:
        """Count a record (``line`` is its canonical JSON); returns its token length."""
        self.rows += 1
        self.valid += 1
        self.kinds[record.kind] += 1
        self.keys.append(record_key(line))
        for message in (record.messages or []) + (record.chosen or []) + (record.rejected or []):
            self.roles[message.role] += 1
        if record.kind != "text":
            self.turns.add(len(record.messages or []) + len(record.chosen or []))
        length = self.counter.count(record)
        self.tokens.add(length)
        if length > self.max_length:
            self.over += 1
        return length

    def report(self) -> QualityReport:
        tokens = TokenStats(tokenizer=self.counter.name, approximate=self.counter.approximate,
                            **self.tokens.stats())  # fmt: skip
        return QualityReport(
            rows=self.rows,
            valid_rows=self.valid,
            invalid_rows=self.rows - self.valid,
            kinds=dict(self.kinds),
            duplicates=count_duplicates(self.keys),
            empty_rows=self.empty,
            role_counts=dict(self.roles),
            turns=LengthStats(**self.turns.stats()),
            tokens=tokens,
            max_length=self.max_length,
            over_max_length=self.over,
            over_max_length_share=round(self.over / self.valid, 4) if self.valid else 0.0,
        )
