"""The name rule (``tunelab.jobs.names``): any printable label up to 200 characters, no control characters."""

from __future__ import annotations

import pytest

from tunelab.errors import InvalidInput, http_status
from tunelab.jobs.names import MAX_NAME, check_name, check_tags

LABELS = [
    "Customer Support Q&A", "客服数据", "Résumé (v2)", "l'équipe", "a/b", "../up", "C:\\data", "Ünïcödé 😀",
    "日本語のデータセット", "مجموعة بيانات", "x" * MAX_NAME, "emoji 👩‍💻 joined", "nbsp\u00a0inside",
]  # fmt: skip
REFUSED = ["nul\x00", "new\nline", "cr\r", "tab\t", "del\x7f", "esc\x1b", "c1\x9b", "line\u2028sep", "par\u2029"]


@pytest.mark.parametrize("name", LABELS)
def test_printable_labels_pass_unchanged(name: str) -> None:
    assert check_name(name, "name") == name


@pytest.mark.parametrize("name", REFUSED)
def test_control_characters_are_refused_with_where_and_how(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_name(name, "name")
    error = caught.value
    assert http_status(error) == 422 and "control character U+" in error.message and error.hint
    position = next(i for i, c in enumerate(name) if not c.isprintable() and c != " ")
    assert error.details["field"] == "name" and error.details["position"] == position


def test_empty_means_not_given_and_limits_hold() -> None:
    assert check_name(None, "name") is None and check_name("", "name") == ""
    with pytest.raises(InvalidInput, match="white space"):
        check_name("  ", "name")
    with pytest.raises(InvalidInput, match="at most 200"):
        check_name("x" * (MAX_NAME + 1), "name")


def test_tags_are_trimmed_deduplicated_and_checked() -> None:
    assert check_tags([" support ", "support", "", "客服"]) == ["support", "客服"]
    assert check_tags(None) == []
    for bad in ("support", [1], ["a\x00"], [f"t{i}" for i in range(51)]):
        with pytest.raises(InvalidInput):
            check_tags(bad)
