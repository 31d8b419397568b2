"""TrainConfig described for people: one list of fields behind the CLI help, the docs and the API.

The field table of ``docs/training.md``, the field list of ``tunelab train --help`` and the
field groups the dashboard gets from ``GET /api/meta`` are all read from the pydantic model
here, so a new field, a changed default or a tightened range shows up everywhere at once
and no copy can drift (a test compares the docs with ``field_table()``).

Rewrite the table in the docs after changing a field::

    python -m tunelab.training.config_docs docs/training.md          # rewrite
    python -m tunelab.training.config_docs --check docs/training.md  # exit 1 when stale
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tunelab.training.config import FIELD_GROUPS, TrainConfig

#: Marker comments that fence the generated table in a Markdown file.
START = "<!-- fields:start (generated from TrainConfig: python -m tunelab.training.config_docs docs/training.md) -->"
END = "<!-- fields:end -->"
ADVANCED = "advanced"
GROUP_LABELS = {
    "run": "What to train",
    "main": "Main",
    ADVANCED: "Advanced",
    "engine": "Written by the engine",
}
_GROUP_ORDER = ("run", "main", ADVANCED, "engine")


@dataclass(frozen=True)
class FieldDoc:
    """One field as people read it: every value already rendered as text."""

    name: str  # dotted for sections: ``lora.r``
    type: str
    default: str
    range: str  # numeric bounds, length bounds or the allowed choices; "" when free
    help: str
    group: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _section(info: FieldInfo) -> type[BaseModel] | None:
    """The nested settings model of a section field (``lora``, ``output``), else None."""
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _group_of(name: str) -> str:
    for group, names in FIELD_GROUPS.items():
        if name in names:
            return group
    return ADVANCED


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _literal_values(annotation: Any) -> list[Any]:
    return list(get_args(annotation)) if get_origin(annotation) is Literal else []


def _type_text(annotation: Any) -> str:
    """``int``, ``float or none``, ``list[str] or 'all-linear'``, ``choice``..."""
    if get_origin(annotation) in (Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        text = " or ".join(_type_text(a) for a in parts)
        return f"{text} or none" if len(parts) < len(get_args(annotation)) else text
    literal = _literal_values(annotation)
    if literal:
        return "choice" if len(literal) > 1 else repr(literal[0])
    if get_origin(annotation) is not None:
        args = ", ".join(_type_text(a) for a in get_args(annotation))
        return f"{get_origin(annotation).__name__}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _choices(annotation: Any) -> list[Any]:
    """The Literal choices of a field (inside an Optional too), when it has a few."""
    if get_origin(annotation) in (Union, types.UnionType):
        found: list[Any] = []
        for part in get_args(annotation):
            found.extend(_choices(part))
        return found
    values = _literal_values(annotation)
    return values if len(values) > 1 else []


def _range_text(info: FieldInfo) -> str:
    low = high = None
    low_open = high_open = False
    min_len = max_len = None
    for item in info.metadata:
        if isinstance(item, Ge):
            low = item.ge
        elif isinstance(item, Gt):
            low, low_open = item.gt, True
        elif isinstance(item, Le):
            high = item.le
        elif isinstance(item, Lt):
            high, high_open = item.lt, True
        elif isinstance(item, MinLen):
            min_len = item.min_length
        elif isinstance(item, MaxLen):
            max_len = item.max_length
    choices = _choices(info.annotation)
    if choices:
        return ", ".join(str(c) for c in choices)
    if low is not None and high is not None and not (low_open or high_open):
        return f"{_number(low)} to {_number(high)}"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '≥'} {_number(low)}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '≤'} {_number(high)}")
    if min_len is not None or max_len is not None:
        if max_len:
            bounds.append(f"{min_len or 0} to {max_len} characters")
        elif min_len:
            bounds.append("not empty" if min_len == 1 else f"at least {min_len} characters")
    return ", ".join(bounds)


def _default_text(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True, validated_data={})
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value) if value == "" else value
    if isinstance(value, list | dict):
        return repr(value)
    return _number(value)


def iter_fields(model: type[BaseModel] = TrainConfig, prefix: str = "") -> Iterator[FieldDoc]:
    """Every field of ``model`` in declaration order, sections flattened to dotted names."""
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        section = _section(info)
        if section is not None:
            yield from iter_fields(section, f"{dotted}.")
            continue
        yield FieldDoc(
            name=dotted,
            type=_type_text(info.annotation),
            default=_default_text(info),
            range=_range_text(info),
            help=info.description or "",
            group=_group_of(dotted),
        )


def field_groups() -> list[dict[str, Any]]:
    """The groups in display order with their fields (``main`` in its own order, the rest in
    declaration order), as the dashboard lays out its form."""
    names = [f.name for f in iter_fields()]
    out = []
    for group in _GROUP_ORDER:
        if group == ADVANCED:
            members = [n for n in names if _group_of(n) == ADVANCED]
        else:
            members = list(FIELD_GROUPS.get(group, ()))
        out.append({"name": group, "label": GROUP_LABELS[group], "fields": members})
    return out


def check_groups() -> list[str]:
    """Names in ``FIELD_GROUPS`` that are no field (a renamed field left behind)."""
    names = {f.name for f in iter_fields()}
    return sorted(n for members in FIELD_GROUPS.values() for n in members if n not in names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_table() -> str:
    """The Markdown table of every field (one row each), as docs/training.md shows it."""
    lines = ["| field | type | default | range or choices | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in iter_fields():
        default = f"`{f.default}`" if f.default else ""
        lines.append(
            f"| `{f.name}` | {_cell(f.type)} | {_cell(default)} | {_cell(f.range)} | {_cell(f.help)} |"
        )
    return "\n".join(lines) + "\n"


def replace_table(text: str, table: str | None = None) -> str:
    """``text`` with the part between the marker comments replaced by the current table."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START!r} and {END!r} are missing")
    body = START + "\n\n" + (table if table is not None else field_table()) + "\n"
    return text[:start] + body + text[end:]


def generated_part(text: str) -> str:
    """What stands between the markers now (to compare with ``field_table()``)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START!r} and {END!r} are missing")
    return text[start + len(START) : end].strip("\n") + "\n"


def update_doc(path: Path, *, check: bool = False) -> bool:
    """Rewrite the table in ``path``; with ``check`` only report. True when it was current."""
    text = path.read_text()
    new = replace_table(text)
    if new == text:
        return True
    if not check:
        path.write_text(new)
    return False


def main(argv: list[str] | None = None) -> int:
    """``python -m tunelab.training.config_docs [--check] FILE.md``."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [Path(a) for a in args if a != "--check"] or [Path("docs/training.md")]
    try:
        stale = [p for p in paths if not update_doc(p, check=check)]
    except ValueError as exc:  # no markers: say so instead of a traceback
        print(exc, file=sys.stderr)
        return 2
    for path in stale:
        print(f"{path}: field table {'is stale' if check else 'rewritten'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
