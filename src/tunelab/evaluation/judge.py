"""An LLM judge through any OpenAI-compatible chat endpoint: a score and a rationale per row.

The judge is another model (tunelab's own ``/v1/chat/completions`` serving a
second model counts, as do OpenAI, vLLM or llama.cpp) asked to grade each
reply against the question, the reference and a rubric, on a 1-10 scale. A
judge is optional and fallible: a row it could not grade (unreachable server,
an error status, a reply without a readable score) records why in that row
and the evaluation goes on, so a failing judge never fails an evaluation or a
job. After a connection failure the remaining rows are not retried one by one:
they carry the same error at once instead of failing one by one (a timeout
stays that row's error: a slow judge may answer the next row).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tunelab.errors import InvalidInput

DEFAULT_RUBRIC = (
    "Grade the ASSISTANT REPLY to the QUESTION on a scale of 1 to 10: 10 when it is correct, complete and as "
    "useful as the REFERENCE ANSWER, 1 when it is wrong or off topic. Judge meaning, not wording."
)
_FORMAT = 'Answer with JSON only: {"score": <1-10>, "rationale": "<one sentence>"}'
SCORE_MIN, SCORE_MAX = 1.0, 10.0


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is and how to ask it."""

    url: str
    model: str
    rubric: str = DEFAULT_RUBRIC
    api_key: str | None = None
    timeout_s: float = 60.0
    max_tokens: int = 200

    def endpoint(self) -> str:
        """The chat completions URL from a base (``http://host/v1``) or the full URL."""
        url = self.url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"judge URL {self.url!r} is not an http(s) URL",
                               hint="e.g. http://127.0.0.1:8001/v1 (an OpenAI-compatible server)")  # fmt: skip
        return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


def judge_prompt(rubric: str, question: str, reference: str, reply: str) -> list[dict[str, str]]:
    """The chat messages the judge answers."""
    text = (f"{rubric}\n\nQUESTION:\n{question}\n\nREFERENCE ANSWER:\n{reference}\n\n"
            f"ASSISTANT REPLY:\n{reply}\n\n{_FORMAT}")  # fmt: skip
    return [{"role": "system", "content": "You are a strict, fair grader."}, {"role": "user", "content": text}]


_NUMBER = r"(-?\d+(?:\.\d+)?)"


def parse_score(text: str) -> tuple[float | None, str]:
    """(score, rationale) from a judge's reply: JSON, ``Score: 7``, ``7/10``, or a leading number.

    A score outside 1-10 or none at all gives (None, the reply), which the row
    records as unparseable.
    """
    text = (text or "").strip()
    candidates: list[tuple[str, str]] = []
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("score"), int | float | str):
            candidates.append((str(data["score"]), str(data.get("rationale") or data.get("reason") or "")))
    for pattern in (rf"score\W{{0,3}}\s*{_NUMBER}", rf"{_NUMBER}\s*/\s*10\b", rf"^\W*{_NUMBER}\b"):
        found = re.search(pattern, text, re.I | re.M)
        if found:
            candidates.append((found.group(1), text))
    for value, rationale in candidates:
        try:
            score = float(value)
        except ValueError:
            continue
        if SCORE_MIN <= score <= SCORE_MAX:
            return score, _rationale(rationale)
    return None, text


def _rationale(text: str) -> str:
    match = re.search(r"rationale\W{0,3}\s*(.+)", text, re.I | re.S)
    return (match.group(1) if match else text).strip().strip('"}').strip()[:1000]


def _ask(client: httpx.Client, config: JudgeConfig, messages: list[dict[str, str]]) -> str:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    body = {"model": config.model, "messages": messages, "temperature": 0, "max_tokens": config.max_tokens}
    response = client.post(config.endpoint(), json=body, headers=headers, timeout=config.timeout_s)
    if response.status_code != 200:
        raise RuntimeError(f"judge answered HTTP {response.status_code}: {response.text[:300]}")
    return str(response.json()["choices"][0]["message"]["content"] or "")


def judge_rows(config: JudgeConfig, items: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """One ``{score, rationale, error, raw}`` per (question, reference, reply); never raises for a row."""
    endpoint = config.endpoint()
    out: list[dict[str, Any]] = []
    unreachable: str | None = None
    with httpx.Client() as client:
        for question, reference, reply in items:
            if unreachable is not None:
                out.append({"score": None, "rationale": None, "error": unreachable})
                continue
            try:
                raw = _ask(client, config, judge_prompt(config.rubric, question, reference, reply))
            except httpx.ConnectError as exc:
                unreachable = f"judge at {endpoint} unreachable: {type(exc).__name__}: {exc}"
                out.append({"score": None, "rationale": None, "error": unreachable})
                continue
            except httpx.TransportError as exc:  # a timeout or a dropped answer: this row only
                out.append({"score": None, "rationale": None,
                            "error": f"judge at {endpoint} did not answer: {type(exc).__name__}: {exc}"})
                continue
            except Exception as exc:  # an error status or a malformed answer: this row only
                out.append({"score": None, "rationale": None, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            score, rationale = parse_score(raw)
            error = None if score is not None else "no score from 1 to 10 found in the judge's reply"
            out.append({"score": score, "rationale": rationale, "error": error, "raw": raw[:2000]})
    return out


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean score over graded rows, and how many rows the judge could not grade (with the first reason)."""
    scores = [r["score"] for r in results if r.get("score") is not None]
    failed = [r for r in results if r.get("score") is None]
    return {"judge_score": round(sum(scores) / len(scores), 4) if scores else None, "graded": len(scores),
            "failed": len(failed), "first_error": failed[0]["error"] if failed else None}  # fmt: skip
