"""An incremental reader for JSON files holding one array of records.

``json.load`` would hold a whole multi-GB file (and its parsed objects) in
memory. This reader keeps only a window of text: it walks the top-level array
(or the first list inside a top-level object, e.g. ``{"data": [...]}``) and
decodes one element at a time with the C-accelerated ``raw_decode``, tracking
the line each element starts on so every issue can name it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from tunelab.datasets.encoding import BOM, decode_utf8, split_incomplete
from tunelab.datasets.issues import REPAIR_HINT, RowProblem

_WS = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 20
#: How deep a record may nest (a conversation is 4 levels: record, messages, turn, parts).
MAX_DEPTH = 64
_DECODER = json.JSONDecoder()
# Lists that belong to one record: an object holding these is a single record, not a wrapper.
_RECORD_LISTS = frozenset({"conversations", "messages", "history", "chosen", "rejected", "tools"})


class JsonArrayReader:
    """Yields ``(line, value)`` for each element; raises ``RowProblem`` with ``.line`` set."""

    def __init__(self, handle: BinaryIO, *, fix_encoding: bool = False) -> None:
        self.handle = handle
        self.fix_encoding = fix_encoding
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.eof = False
        self.carry = b""
        self.buf_lines = 0  # newlines in buf, to locate encoding problems
        self.fixed_lines: list[int] = []

    def _fail(self, code: str, message: str, hint: str, line: int) -> RowProblem:
        problem = RowProblem(code, message, hint)
        problem.line = line  # type: ignore[attr-defined]
        return problem

    def _read_more(self, size: int = _CHUNK) -> bool:
        if self.eof:
            return False
        data = self.carry + self.handle.read(size)
        if len(data) == len(self.carry):
            self.eof = True
            data, self.carry = self.carry, b""
        else:
            data, self.carry = split_incomplete(data)
        first_line = self.line + self.buf.count("\n", self.pos)
        decoded = decode_utf8(data, fallback=self.fix_encoding)
        for offset in decoded.bad_offsets:
            line = first_line + data.count(b"\n", 0, offset)
            if not self.fix_encoding:
                raise self._fail(
                    "non_utf8",
                    f"bytes that are not valid UTF-8 at line {line}",
                    f"Save the file as UTF-8, {REPAIR_HINT} (decodes such bytes as cp1252)",
                    line,
                )
            self.fixed_lines.append(line)
        if self.pos > len(self.buf) // 2:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += decoded.text.removeprefix(BOM) if first_line == 1 and not self.buf else decoded.text
        return True

    def _advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def _skip_ws(self) -> str:
        """Skip whitespace; return the next character, or '' at end of file."""
        while True:
            self._advance(_WS.match(self.buf, self.pos).end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._read_more():
                return ""

    def _value(self) -> Any:
        size = _CHUNK
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except RecursionError:  # thousands of nested brackets: the C decoder gives up
                raise self._fail(
                    "bad_json",
                    f"invalid JSON at line {self.line}: nested deeper than the reader allows",
                    f"A record nests a few levels (messages, turns, parts); keep it under {MAX_DEPTH}",
                    self.line,
                ) from None
            except json.JSONDecodeError as exc:
                truncated = exc.pos >= len(self.buf) - 16 or exc.msg.startswith("Unterminated")
                if truncated and self._read_more(size):
                    size *= 2
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                raise self._fail(
                    "bad_json",
                    f"invalid JSON at line {line}: {exc.msg}",
                    "Fix the JSON syntax there (a missing comma, quote or bracket is the usual cause)",
                    line,
                ) from None
            if end == len(self.buf) and self._read_more(size):
                continue  # a number may continue in the next chunk
            self._advance(end)
            return value

    def _expect(self, allowed: str, context: str) -> str:
        char = self._skip_ws()
        if char == "" or char not in allowed:
            found = repr(char) if char else "end of file"
            raise self._fail(
                "bad_json",
                f"invalid JSON at line {self.line}: expected {' or '.join(map(repr, allowed))} {context}, found {found}",
                "Fix the JSON syntax there (a missing comma, quote or bracket is the usual cause)",
                self.line,
            )
        self._advance(self.pos + 1)
        return char

    def _array(self) -> Iterator[tuple[int, Any]]:
        if self._skip_ws() == "]":
            self._advance(self.pos + 1)
            return
        while True:
            self._skip_ws()
            line = self.line
            yield line, self._value()
            if self._expect(",]", "after an array element") == "]":
                return

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        first = self._skip_ws()
        if first == "[":
            self._advance(self.pos + 1)
            yield from self._array()
        elif first == "{":
            yield from self._object()
        else:
            found = repr(first) if first else "an empty file"
            raise self._fail(
                "bad_json",
                f"invalid JSON at line {self.line}: expected '[' or '{{', found {found}",
                "A JSON dataset is an array of records, or an object holding one such array",
                self.line,
            )
        if self._skip_ws() != "":
            raise self._fail(
                "bad_json",
                f"invalid JSON at line {self.line}: extra data after the end",
                "Remove what follows the closing bracket, or use JSONL (one object per line)",
                self.line,
            )

    def _object(self) -> Iterator[tuple[int, Any]]:
        """Stream the first list-valued key of a top-level object; parse the rest."""
        start_line = self.line
        self._advance(self.pos + 1)
        scalars: dict[str, Any] = {}
        streamed = False
        if self._skip_ws() == "}":
            self._advance(self.pos + 1)
        else:
            while True:
                self._skip_ws()
                key = self._value()
                self._expect(":", "after an object key")
                if self._skip_ws() == "[" and not streamed and key not in _RECORD_LISTS:
                    self._advance(self.pos + 1)
                    streamed = True
                    yield from self._array()
                else:
                    scalars[str(key)] = self._value()
                if self._expect(",}", "after an object member") == "}":
                    break
        if not streamed:
            yield start_line, scalars  # one object, no list: a single record
