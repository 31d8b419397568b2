"""A wrong database URL is one clear error, and SQLite never creates folders outside the home."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.errors import DatabaseUnavailable, http_status
from tunelab.store.db import init_db


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "not a database URL"),
        ("nosuchdialect://x", "not a database URL"),
        ("postgresql://nobody@127.0.0.1:1/x", "cannot open the database postgresql://nobody@127.0.0.1:1/x"),
    ],
)
def test_bad_database_urls_raise_one_error_with_a_hint(url: str, message: str) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        init_db(url)
    assert message in caught.value.message
    assert "TUNELAB_DATABASE_URL" in caught.value.hint
    assert http_status(caught.value) == 503


def test_sqlite_outside_the_home_needs_an_existing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "not-here" / "deeper"
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        init_db(f"sqlite:///{missing / 'x.db'}")
    assert not missing.parent.exists()


def test_sqlite_inside_the_home_gets_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunelab.settings import get_settings

    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        init_db(f"sqlite:///{tmp_path / 'home' / 'db' / 'x.db'}")
        assert (tmp_path / "home" / "db" / "x.db").exists()
    finally:
        get_settings.cache_clear()
