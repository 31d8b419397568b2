"""The tier order of ``docs/architecture.md`` as data, and a checker that reads source with ``ast``.

Reading the source (not ``sys.modules`` after a few imports) sees every import,
including the ones inside functions that run only on some code paths.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Higher tiers may import lower ones and their own tier; never a higher one.
# Keep in step with the table in docs/architecture.md ("Imports flow one way").
TIERS: dict[str, int] = {
    "errors": 0,
    "settings": 0,
    "store": 1,
    "storage": 1,
    "datasets": 2,
    "models": 2,
    "monitor": 2,
    "testing": 2,
    "training": 3,
    "jobs": 4,
    "sweeps": 4,
    "serving": 4,
    "export": 4,
    "evaluation": 4,
    "providers": 4,
    "client": 5,
    "web": 5,
    "api": 6,
    "cli": 7,
    "__main__": 8,
}
# Same-tier imports are allowed between these service packages; elsewhere a
# package at the same tier is a sibling it must not reach into.
SHARED_TIERS = {4}
# Third-party packages a part must never import: the engine and the pure
# layers stay free of web and database code (training runs without a server).
FORBIDDEN: dict[str, frozenset[str]] = {
    part: frozenset({"fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn"})
    for part in ("training", "datasets", "models", "errors", "settings")
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported} ({self.why})"


def part_of(dotted: str, package: str) -> str | None:
    """The top-level part (``store``, ``jobs``...) a dotted module name belongs to."""
    pieces = dotted.split(".")
    if pieces[0] != package:
        return None
    return pieces[1] if len(pieces) > 1 else ""


def module_name(path: Path, root: Path, package: str) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [package, *rel.parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every ``tunelab...`` name an import statement anywhere in the tree refers to."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # ``from tunelab import jobs`` names a part through the alias
            if target.count(".") == 0:
                out.extend((node.lineno, f"{target}.{a.name}") for a in node.names)
    return out


def find_violations(root: Path, package: str = "tunelab") -> list[Violation]:
    """Imports in ``root`` (the package folder) that go against ``TIERS``."""
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root, package)
        here = part_of(module, package) or ""
        if here == "":  # the package's own __init__
            continue
        if here not in TIERS:
            found.append(Violation(module, 0, "-", f"part {here!r} has no tier in TIERS"))
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in imported_names(tree, module, path.name == "__init__.py"):
            if name.split(".")[0] in FORBIDDEN.get(here, ()):
                found.append(Violation(module, line, name, f"{here} must not use {name.split('.')[0]}"))
                continue
            there = part_of(name, package)
            if there is None or there == "" or there == here:
                continue
            if there not in TIERS:
                continue  # `from tunelab import __version__` and friends
            mine, theirs = TIERS[here], TIERS[there]
            if theirs > mine:
                found.append(Violation(module, line, name, f"{here} (tier {mine}) is below {there} (tier {theirs})"))
            elif theirs == mine and mine not in SHARED_TIERS:
                found.append(Violation(module, line, name, f"{here} and {there} are siblings at tier {mine}"))
    return found
