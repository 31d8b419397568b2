"""The rule for names users give things (datasets, jobs, configurations, saved models, tags).

Names are labels shown in lists, never file names on disk: every folder the
studio writes is named from a server id (dataset versions by content hash, runs
by job id, uploads by a random id). So a name may be any printable text a
person would type, "Customer Support Q&A", "客服数据", "Résumé (v2)", up to
``MAX_NAME`` characters; only characters that break the listings, logs and
terminals that show them are refused: control characters (NUL, newlines, tabs,
escapes, C1 controls), line and paragraph separators, and lone surrogates that
cannot be stored as UTF-8. The rule sits here, in the service tier, so every
front end (REST, the OpenAI-style routes, the CLI, the dashboard) applies it.
"""

from __future__ import annotations

import unicodedata

from tunelab.errors import InvalidInput

MAX_NAME = 200  # the width of the name columns (datasets, jobs, models, configurations)
#: Unicode categories a label may not hold: control, surrogate, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
#: Words for the control characters people paste by accident (Unicode gives controls no name).
_CONTROL_WORDS = {0: "NUL", 9: "tab", 10: "line feed", 13: "carriage return", 27: "escape", 127: "delete"}


def _first_refused(value: str) -> tuple[int, str] | None:
    """The position and character of the first character a label may not hold, if any."""
    for position, char in enumerate(value):
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return position, char
    return None


def check_name(value: str | None, field: str, *, max_length: int = MAX_NAME) -> str | None:
    """``value`` unchanged when it is a printable label; ``InvalidInput`` (422) saying why otherwise.

    ``None`` and ``""`` mean "not given" and pass through, so callers can check
    optional fields without a branch. A name of only spaces is refused: it
    would show as nothing in every list.
    """
    if value is None or value == "":
        return value
    if len(value) > max_length:
        raise InvalidInput(
            f"`{field}` is {len(value)} characters long; names may have at most {max_length}",
            f"shorten `{field}` to {max_length} characters or fewer",
            details={"field": field, "max_length": max_length},
        )
    refused = _first_refused(value)
    if refused is not None:
        position, char = refused
        code = f"U+{ord(char):04X}"
        label = _CONTROL_WORDS.get(ord(char)) or unicodedata.name(char, "").lower()
        raise InvalidInput(
            f"`{field}` holds the control character {code}{f' ({label})' if label else ''} at position "
            f"{position}; names are printable labels",
            f"remove the control character from `{field}`; any printable text works "
            "(letters in any script, digits, spaces, punctuation such as & ' ( ))",
            details={"field": field, "position": position, "character": code},
        )
    if not value.strip():
        raise InvalidInput(
            f"`{field}` is only white space", f"give `{field}` at least one visible character",
            details={"field": field},
        )
    return value


def check_tags(tags: object, field: str = "tags", *, max_tags: int = 50) -> list[str]:
    """Tags as a clean list: each a label (``check_name``), trimmed, empty ones dropped, duplicates once.

    Datasets and jobs carry tags the same way, so both go through this one
    function; ``max_tags`` keeps a row's JSON small.
    """
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise InvalidInput(f"`{field}` must be a list of strings", f'send e.g. {field}=["support", "v1"]')
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidInput(f"`{field}` must be a list of strings, got {tag!r}", "quote every tag")
        tag = tag.strip()
        check_name(tag, field, max_length=100)
        if tag and tag not in out:
            out.append(tag)
    if len(out) > max_tags:
        raise InvalidInput(f"`{field}` has {len(out)} tags; at most {max_tags}", "keep the tags that matter")
    return out


def check_text(value: str | None, field: str, *, max_length: int | None = None) -> str | None:
    """Free text (a description, a note) unchanged when it can be stored; ``InvalidInput`` (422) otherwise.

    Unlike a name, free text may hold line breaks and tabs; only NUL, which
    PostgreSQL text cannot store, and lone surrogates, which no UTF-8 store can,
    are refused, and text over ``max_length``.
    """
    if not value:
        return value
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(
            f"`{field}` is {len(value)} characters long; at most {max_length}",
            f"shorten `{field}` to {max_length} characters or fewer",
            details={"field": field, "max_length": max_length},
        )
    for position, char in enumerate(value):
        if char == "\x00" or unicodedata.category(char) == "Cs":
            code = f"U+{ord(char):04X}"
            raise InvalidInput(
                f"`{field}` holds the character {code} at position {position}, which cannot be stored",
                f"remove {'the NUL character' if char == chr(0) else 'the broken character'} from `{field}`",
                details={"field": field, "position": position, "character": code},
            )
    return value
