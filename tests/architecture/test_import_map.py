"""The map in docs/architecture.md is enforced on every module of src/tunelab."""

from __future__ import annotations

from pathlib import Path

from tests.architecture.import_map import TIERS, find_violations

import tunelab

PACKAGE = Path(tunelab.__file__).parent


def test_every_import_follows_the_tier_order() -> None:
    violations = find_violations(PACKAGE)
    assert not violations, "\n".join(map(str, violations))


def test_every_part_has_a_tier() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    parts = {p for p in parts if not p.startswith(("_", ".")) or p == "__main__"} - {"py", "static"}
    parts = {p for p in parts if (PACKAGE / p).is_dir() or (PACKAGE / f"{p}.py").exists()}
    assert parts <= set(TIERS), sorted(parts - set(TIERS))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "tunelab"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "__init__.py").touch()
    return root


def test_checker_catches_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "store/__init__.py": "",
        "store/models.py": "def f():\n    from tunelab.jobs.states import X\n    return X\n",
        "jobs/__init__.py": "",
        "jobs/states.py": "X = 1\n",
    })
    [violation] = find_violations(root)
    assert violation.module == "tunelab.store.models"
    assert violation.imported == "tunelab.jobs.states"
    assert violation.line == 2


def test_checker_catches_relative_and_sibling_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "training/__init__.py": "",
        "training/output.py": "from ..evaluation import compare\n",
        "datasets/__init__.py": "from tunelab import models\n",
        "models/__init__.py": "",
        "evaluation/__init__.py": "",
        "evaluation/compare.py": "from tunelab.training import output\n",
    })
    found = {(v.module, v.imported) for v in find_violations(root)}
    assert found == {
        ("tunelab.training.output", "tunelab.evaluation"),
        ("tunelab.datasets", "tunelab.models"),
    }


def test_checker_catches_database_code_in_the_engine(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "training/__init__.py": "",
        "training/run.py": "def f():\n    import sqlalchemy.orm\n",
    })
    [violation] = find_violations(root)
    assert (violation.module, violation.imported) == ("tunelab.training.run", "sqlalchemy.orm")


def test_checker_accepts_downward_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "cli/__init__.py": "import tunelab.api\nfrom tunelab.errors import E\n",
        "api/__init__.py": "from tunelab.jobs import service\n",
        "jobs/__init__.py": "from tunelab.export import hub\nfrom tunelab.store import db\n",
        "errors.py": "E = 1\n",
    })
    assert find_violations(root) == []
