"""The dataset upload page previews a real file (POST /api/preview-csv) before storing it, in chromium."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tests.web.browser import studio

from tunelab.settings import Settings


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_preview_shows_statistics_columns_rows_and_errors_before_storing(
    settings: Settings, page: Any, tmp_path: Path
) -> None:
    good = _write_csv(tmp_path / "support.csv", [["input", "output"]] + [
        [f"How do I reset password {i}?", f"Open Settings, then Security ({i})."] for i in range(120)])  # fmt: skip
    half = _write_csv(tmp_path / "half.csv", [["input", "answer"], ["hi", "there"], ["", ""]])
    with studio(settings) as url:
        page.goto(f"{url}/ui/#/datasets")
        page.get_by_label("File").set_input_files(str(half))  # choosing a file previews it at once
        errors = page.get_by_role("list", name="Validation errors")
        errors.wait_for()
        assert "Missing required 'output' column" in errors.inner_text()
        stats = page.get_by_label("Dataset statistics")
        assert "missing" in stats.inner_text() and "half.csv" in stats.inner_text()
        assert page.get_by_role("list", name="Columns").inner_text().split() == ["input", "answer"]

        page.get_by_label("File").set_input_files(str(good))
        page.get_by_role("heading", name="Preview of support.csv").wait_for()
        stats = page.get_by_label("Dataset statistics").inner_text()
        assert "120" in stats and "present" in stats and "input_output" in stats
        assert page.get_by_text("No validation errors.").is_visible()
        rows = page.get_by_role("table", name="Preview rows")
        assert [h.strip() for h in rows.locator("th").all_text_contents()] == ["input", "output"]
        assert "How do I reset password 0?" in rows.inner_text() and rows.locator("tbody tr").count() == 10
        assert page.get_by_text("Usable for training.").is_visible()
        listed = page.get_by_role("table", name="Datasets")
        assert "No datasets yet." in listed.inner_text()  # the preview stored nothing

        page.get_by_label("Name", exact=True).fill("Customer Support Q&A")
        page.get_by_label("Tags").fill("support, 客服")
        page.get_by_role("button", name="Upload").click()
        page.get_by_text("Stored Customer Support Q&A").wait_for()
        row = listed.get_by_role("row").filter(has_text="Customer Support Q&A")
        row.wait_for()
        assert "support" in row.inner_text() and "客服" in row.inner_text()
        page.get_by_label("Filter by tag").fill("nope")
        page.get_by_label("Filter by tag").press("Enter")
        page.get_by_text("No dataset tagged nope.").wait_for()
