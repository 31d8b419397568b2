"""Decoding bytes as UTF-8, and repairing the bytes that are not.

Datasets exported from spreadsheets on Windows often mix UTF-8 with cp1252
("smart quotes", accented letters). Reading never guesses: invalid bytes are an
error with their line number. Repair decodes only the invalid byte runs as
cp1252 (latin-1 for the five bytes cp1252 leaves undefined) and reports which
lines it changed, leaving valid UTF-8 around them as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BOM = "\ufeff"


@dataclass
class Decoded:
    """Text decoded from bytes, with the byte offsets that were not valid UTF-8."""

    text: str
    bad_offsets: list[int] = field(default_factory=list)


def _decode_legacy(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in data)


def decode_utf8(data: bytes, *, fallback: bool) -> Decoded:
    """Decode ``data``; without ``fallback`` stop at the first invalid byte.

    With ``fallback`` every invalid run is decoded as cp1252/latin-1 instead and
    its offset recorded, so the caller can report the lines it fixed.
    """
    try:
        return Decoded(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        if not fallback:
            return Decoded(data[: exc.start].decode("utf-8"), [exc.start])
        first = exc
    parts: list[str] = []
    bad: list[int] = []
    start = 0
    exc_: UnicodeDecodeError | None = first
    while exc_ is not None:
        bad_start, bad_end = start + exc_.start, start + exc_.end
        parts.append(data[start:bad_start].decode("utf-8"))
        parts.append(_decode_legacy(data[bad_start:bad_end]))
        bad.append(bad_start)
        start = bad_end
        try:
            parts.append(data[start:].decode("utf-8"))
            exc_ = None
        except UnicodeDecodeError as nxt:
            exc_ = nxt
    return Decoded("".join(parts), bad)


def split_incomplete(data: bytes) -> tuple[bytes, bytes]:
    """Split off a UTF-8 sequence cut by a chunk boundary, to prepend to the next chunk."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data, b""
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return (data, b"") if back >= need else (data[:-back], data[-back:])
    return data, b""
