"""No harm: does the tuned model still answer what the base model answered?

The shipped probe (``probe/general.jsonl``, written for the project, licence
beside it) holds general questions (facts, arithmetic, simple instructions)
with short accepted answers. Any dataset can stand in as a regression set:
each row's reference is its accepted answer. Both models answer every probe
question greedily; a reply is right when its normalised text holds one of the
accepted answers as whole words, so "The capital of France is Paris." counts
for "Paris". The report counts right answers per side, lists what the tuned
model lost (and gained), and flags a regression when it gets fewer right.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tunelab.evaluation.metrics import normalize_answer
from tunelab.evaluation.rows import EvalRow

PROBE_DIR = Path(__file__).parent / "probe"
GENERAL_PROBE = PROBE_DIR / "general.jsonl"
#: How many more wrong answers than the base a tuned model may give before it is a regression.
DEFAULT_TOLERANCE = 0


def load_probe(path: str | Path = GENERAL_PROBE) -> list[EvalRow]:
    """The probe's questions as evaluation rows (``accepted`` holds every right answer)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append(EvalRow([{"role": "user", "content": item["question"]}], item["answer"],
                                accepted=list(item.get("accepted") or [item["answer"]]), id=item.get("id")))
    return rows


def is_correct(reply: str, accepted: list[str]) -> bool:
    """True when the normalised reply contains a normalised accepted answer as whole words."""
    said = f" {normalize_answer(reply)} "
    for answer in accepted:
        wanted = normalize_answer(answer)
        if wanted and re.search(rf"(?<!\S){re.escape(wanted)}(?!\S)", said):
            return True
    return False


def compare(rows: list[EvalRow], base: list[str] | None, tuned: list[str], *,
            name: str = "general", tolerance: int = DEFAULT_TOLERANCE) -> dict[str, Any]:  # fmt: skip
    """The retention report: right answers per side, what was lost and gained, the regression flag."""
    answers = [r.accepted or [r.reference] for r in rows]
    tuned_ok = [is_correct(t, a) for t, a in zip(tuned, answers, strict=True)]
    report: dict[str, Any] = {"probe": name, "size": len(rows), "tuned_correct": sum(tuned_ok),
                              "base_correct": None, "lost": [], "gained": [], "regression": False}  # fmt: skip
    if base is None:
        return report
    base_ok = [is_correct(b, a) for b, a in zip(base, answers, strict=True)]
    report["base_correct"] = sum(base_ok)
    for row, b, t, b_ok, t_ok in zip(rows, base, tuned, base_ok, tuned_ok, strict=True):
        item = {"id": row.id, "question": row.prompt, "answer": row.reference, "base": b, "tuned": t}
        if b_ok and not t_ok:
            report["lost"].append(item)
        elif t_ok and not b_ok:
            report["gained"].append(item)
    report["kept"] = sum(1 for b_ok, t_ok in zip(base_ok, tuned_ok, strict=True) if b_ok and t_ok)
    report["regression"] = report["tuned_correct"] < report["base_correct"] - tolerance
    report["tolerance"] = tolerance
    return report
