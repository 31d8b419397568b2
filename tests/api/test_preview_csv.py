"""POST /api/preview-csv: the workflow guide's preview, for every file type tunelab reads.

The guide's answer is ``{filename, columns, data, validation_errors, statistics}``;
tunelab's structured issues travel beside it under ``issues``. Nothing is stored,
an oversize file is a 413 in the guide's words, and a malformed file is a report
(or a 4xx), never a 500.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.settings import Settings

GUIDE_KEYS = {"filename", "columns", "data", "validation_errors", "statistics"}
FIRST = {
    "input": "What is machine learning?",
    "output": "Machine learning is a subset of AI that enables computers to learn from data.",
}


def _guide_csv(rows: int = 1500) -> bytes:
    """The guide's dataset.csv: `input`, `output`, its first row, then more rows with commas and quotes."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["input", "output"])
    writer.writerow([FIRST["input"], FIRST["output"]])
    for i in range(1, rows):
        writer.writerow([f"Question {i}, with a comma?", f'Answer {i} says "hello".'])
    return out.getvalue().encode()


def _preview(client: TestClient, name: str, body: bytes, **params: object) -> dict:
    response = client.post("/api/preview-csv", files={"file": (name, body)}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_guides_csv_answers_the_guides_shape(client: TestClient, settings: Settings) -> None:
    answer = _preview(client, "dataset.csv", _guide_csv())
    assert set(answer) >= GUIDE_KEYS
    assert answer["filename"] == "dataset.csv"
    assert answer["columns"] == ["input", "output"]
    assert answer["data"][0] == FIRST
    assert answer["data"][1] == {"input": "Question 1, with a comma?", "output": 'Answer 1 says "hello".'}
    assert answer["validation_errors"] == []
    assert answer["statistics"] == {"total_rows": 1500, "total_columns": 2, "has_required_columns": True}
    assert answer["ok"] is True and answer["format"] == "input_output" and answer["file_type"] == "csv"
    assert answer["issues"] == []
    # nothing stored, no upload left behind
    assert client.get("/api/datasets").json()["count"] == 0
    assert not list((settings.home / "uploads").iterdir())
    assert len(_preview(client, "dataset.csv", _guide_csv(), rows=3)["data"]) == 3


def test_missing_output_column_and_empty_rows_are_the_guides_sentences(client: TestClient) -> None:
    answer = _preview(client, "half.csv", b"input,answer\nhello,hi\nbye,ciao\n")
    assert "Missing required 'output' column" in answer["validation_errors"]
    assert answer["statistics"] == {"total_rows": 2, "total_columns": 2, "has_required_columns": False}
    assert answer["columns"] == ["input", "answer"] and answer["data"][0] == {"input": "hello", "answer": "hi"}
    assert [issue["code"] for issue in answer["issues"]] == ["unknown_format"]
    assert answer["ok"] is False

    rows = b"input,output\n" + b"q,a\n" * 3 + b",\n" * 5 + b"q2,a2\n"
    answer = _preview(client, "gaps.csv", rows)
    assert answer["validation_errors"] == ["Found 5 empty rows"]
    assert answer["statistics"]["total_rows"] == 9 and answer["statistics"]["has_required_columns"]
    empty = [issue for issue in answer["issues"] if issue["code"] == "empty_row"]
    assert len(empty) == 5 and empty[0]["line"] == 5 and empty[0]["hint"]


def _parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


SHAREGPT = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
CASES = [
    ("data.jsonl", "".join(json.dumps(FIRST) + "\n" for _ in range(4)).encode(), ["input", "output"], FIRST, 4),
    ("data.json", json.dumps([SHAREGPT] * 3).encode(), ["conversations"], SHAREGPT, 3),
    ("notes.txt", b"first text\n\nsecond text\nthird\n", ["text"], {"text": "first text"}, 3),
    ("pc.parquet", _parquet([{"prompt": "2+2?", "completion": "4"}] * 6), ["prompt", "completion"],
     {"prompt": "2+2?", "completion": "4"}, 6),
]


@pytest.mark.parametrize(("name", "body", "columns", "first", "total"), CASES, ids=[c[0] for c in CASES])
def test_every_file_type_tunelab_reads(client: TestClient, name: str, body: bytes, columns: list[str],
                                       first: dict, total: int) -> None:  # fmt: skip
    answer = _preview(client, name, body)
    assert answer["filename"] == name and answer["columns"] == columns and answer["data"][0] == first
    assert answer["statistics"] == {"total_rows": total, "total_columns": len(columns), "has_required_columns": True}
    assert answer["validation_errors"] == [] and answer["ok"]


def test_malformed_files_are_reported_not_500(client: TestClient) -> None:
    bad_json = _preview(client, "bad.jsonl", json.dumps(FIRST).encode() + b"\n{oops\n")
    assert bad_json["validation_errors"] and "JSON" in bad_json["validation_errors"][0]
    assert bad_json["issues"][0]["code"] == "bad_json" and bad_json["issues"][0]["line"] == 2
    assert bad_json["data"] == [FIRST] and bad_json["statistics"]["total_rows"] == 2

    fake = _preview(client, "fake.parquet", b"PAR1 not really parquet")
    assert fake["validation_errors"] and fake["issues"][0]["code"] == "wrong_file_type"
    assert fake["data"] == [] and fake["statistics"]["has_required_columns"] is False

    quote = _preview(client, "quote.csv", b'input,output\nfine,row\n"unclosed,x\nmore\n')
    assert quote["validation_errors"] and not quote["ok"]

    binary = _preview(client, "zip.csv", b"PK\x03\x04\x00\x00binary")
    assert binary["issues"][0]["code"] == "wrong_file_type"

    assert_error(client.post("/api/preview-csv", files={"file": ("x.exe", b"MZ")}), 422, "invalid_input")
    assert_error(client.post("/api/preview-csv", data={"name": "x"}), 422, "invalid_input")
    assert_error(client.post("/api/preview-csv", json={"file": "x"}), 422, "invalid_input")
    assert_error(client.post("/api/preview-csv", files={"file": ("a.csv", b"a")}, params={"rows": -1}),
                 422, "invalid_input")  # fmt: skip


def test_oversize_is_413_in_the_guides_words_and_the_limit_is_a_setting(tunelab_home: Path) -> None:
    assert Settings(home=tunelab_home).preview_max_bytes == 50 * 1024**2  # the guide's 50 MB
    body = b"input,output\n" + b"q,a\n" * 2000  # 8 kB
    small = TestClient(create_app(Settings(home=tunelab_home, preview_max_bytes=1024**2 // 256)))  # 4 kB
    error = assert_error(small.post("/api/preview-csv", files={"file": ("big.csv", body)}), 413, "payload_too_large")
    assert "File exceeds" in error["message"] and "TUNELAB_PREVIEW_MAX_BYTES" in error["hint"]
    fifty = TestClient(create_app(Settings(home=tunelab_home, preview_max_bytes=50 * 1024**2)))
    assert fifty.post("/api/preview-csv", files={"file": ("big.csv", body)}).status_code == 200

    # a chunked body announces no length: the limit is enforced while streaming, with the same sentence
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n").encode()  # fmt: skip
    tiny = TestClient(create_app(Settings(home=tunelab_home, preview_max_bytes=2 * 1024**2)))
    big = b"input,output\n" + b"q,a\n" * (600 * 1024)  # 2.4 MB
    chunks = iter([head, big, f"\r\n--{boundary}--\r\n".encode()])
    response = tiny.post("/api/preview-csv", content=chunks,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    assert assert_error(response, 413, "payload_too_large")["message"] == "File exceeds 2MB limit"
    assert not list((tunelab_home / "uploads").iterdir())


def test_preview_csv_is_documented_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/preview-csv"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    schema = spec["components"]["schemas"]["TablePreview"]
    assert set(schema["properties"]) >= GUIDE_KEYS
    assert all(prop.get("description") for prop in schema["properties"].values())
