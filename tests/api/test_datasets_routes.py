"""Dataset routes: streamed upload with a size limit, preview, versions, rows, names never paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient
from tests.api.conftest import assert_error

from tunelab.api import create_app
from tunelab.errors import InvalidInput
from tunelab.settings import Settings


def test_upload_list_rows_quality_delete(client: TestClient, shared_datasets: Path, settings: Settings) -> None:
    with (shared_datasets / "alpaca_en_demo.json").open("rb") as handle:
        response = client.post("/api/datasets", files={"file": ("alpaca_en_demo.json", handle)},
                               data={"description": "demo"})  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "alpaca_en_demo" and body["version"]["format"] == "alpaca"
    rows_total = body["version"]["num_rows"]
    assert rows_total > 100
    dataset_id = body["id"]

    assert client.get("/api/datasets").json()["count"] == 1
    assert client.get(f"/api/datasets/{dataset_id}").json()["latest_version"]["id"] == body["version"]["id"]
    assert client.get("/api/datasets/alpaca_en_demo").json()["id"] == dataset_id  # by name too
    assert client.get(f"/api/datasets/{dataset_id}/versions").json()["count"] == 1
    rows = client.get(f"/api/datasets/{dataset_id}/rows", params={"offset": 2, "limit": 3}).json()
    assert rows["count"] == rows_total and len(rows["data"]) == 3
    assert rows["data"][0]["messages"][-1]["role"] == "assistant"
    quality = client.get(f"/api/datasets/{dataset_id}/quality").json()
    assert quality["ok"] and quality["quality"]["rows"] == rows_total

    # nothing named after the client's file on disk, and no upload left behind
    names = [p.name for p in settings.home.rglob("*")]
    assert not any("alpaca" in name for name in names)
    assert not list((settings.home / "uploads").iterdir())

    assert client.delete(f"/api/datasets/{dataset_id}").status_code == 204
    assert_error(client.get(f"/api/datasets/{dataset_id}"), 404, "not_found")
    assert not (settings.datasets_dir / body["version"]["id"]).exists()


def test_preview_does_not_save(client: TestClient, chat_file: Path, settings: Settings) -> None:
    response = client.post("/api/datasets/preview", files={"file": ("chat.jsonl", chat_file.read_bytes())})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] and report["format"] and len(report["preview"]) > 0
    assert report["path"] == "chat.jsonl"
    assert client.get("/api/datasets").json()["count"] == 0
    bad = client.post("/api/datasets/preview", files={"file": ("bad.jsonl", b'{"messages": 3}\n{oops\n')})
    assert bad.status_code == 200 and not bad.json()["ok"] and bad.json()["errors"] > 0


def test_invalid_dataset_is_refused(client: TestClient) -> None:
    response = client.post("/api/datasets", files={"file": ("bad.jsonl", b"{oops\n")})
    assert response.status_code == 422 and response.json()["error"]["hint"]
    assert_error(client.post("/api/datasets", files={"file": ("x.exe", b"MZ")}), 422, "invalid_input")
    assert_error(client.post("/api/datasets", data={"name": "x"}), 422, "invalid_input")
    assert_error(client.post("/api/datasets", json={"file": "x"}), 422, "invalid_input")


def test_oversize_upload_with_content_length(tunelab_home: Path, chat_file: Path) -> None:
    client = TestClient(create_app(Settings(home=tunelab_home, max_upload_bytes=200)))
    big = b'{"text": "' + b"x" * 100_000 + b'"}\n'
    response = client.post("/api/datasets", files={"file": ("big.jsonl", big)})
    assert "limit" in assert_error(response, 413, "payload_too_large")["message"]


def _chunked_multipart(payload: bytes, boundary: str = "tunelabboundary") -> Iterator[bytes]:
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jsonl\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    for start in range(0, len(payload), 4096):
        yield payload[start : start + 4096]
    yield f"\r\n--{boundary}--\r\n".encode()


def test_oversize_chunked_upload_is_stopped_while_streaming(tunelab_home: Path) -> None:
    settings = Settings(home=tunelab_home, max_upload_bytes=10_000)
    client = TestClient(create_app(settings))
    payload = b"".join(json.dumps({"text": "y" * 90}).encode() + b"\n" for _ in range(1000))
    response = client.post(
        "/api/datasets",
        content=_chunked_multipart(payload),
        headers={"Content-Type": "multipart/form-data; boundary=tunelabboundary"},
    )
    assert_error(response, 413, "payload_too_large")
    assert not list((settings.home / "uploads").iterdir())  # the partial file is gone
    small = b"".join(json.dumps({"text": f"row {i} " * 5}).encode() + b"\n" for i in range(20))
    ok = client.post("/api/datasets", content=_chunked_multipart(small),
                     headers={"Content-Type": "multipart/form-data; boundary=tunelabboundary"})  # fmt: skip
    assert ok.status_code == 201, ok.text


def test_path_like_names_are_refused(client: TestClient, chat_file: Path, settings: Settings) -> None:
    data = chat_file.read_bytes()
    for name in ("../evil", "a/b", "..", "x\\y", "/etc/passwd"):
        response = client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": name})
        assert "name" in assert_error(response, 422, "invalid_input")["message"]
    job = {"configuration": {"model": "m", "dataset": str(chat_file)}, "save": {"model_name": "../../x"}}
    assert "model_name" in assert_error(client.post("/api/jobs", json=job), 422, "invalid_input")["message"]
    config = {"name": "../x", "model": "m", "dataset": "d"}
    assert_error(client.post("/api/configurations", json=config), 422, "invalid_input")
    # a path-like *file name* is only a label: the file lands under a server id
    response = client.post("/api/datasets", files={"file": ("../../../escape.jsonl", data)})
    assert response.status_code == 201, response.text
    assert not (settings.home.parent / "escape.jsonl").exists()
    assert not any("escape" in p.name for p in settings.home.parent.rglob("*"))


def test_repair_makes_a_new_version(client: TestClient) -> None:
    rows = [{"text": "  padded text  "}, {"text": "same"}, {"text": "same"}, {"text": "other row"}]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    uploaded = client.post("/api/datasets", files={"file": ("t.jsonl", body)}, data={"name": "texts"}).json()
    repaired = client.post("/api/datasets/texts/repair", json={})
    assert repaired.status_code == 201, repaired.text
    result = repaired.json()
    assert result["parent_id"] == uploaded["version"]["id"] and result["num_rows"] == 3
    assert result["report"]["duplicates_removed"] and result["summary"]
    versions = client.get("/api/datasets/texts/versions").json()
    assert versions["count"] == 2
    assert client.get("/api/datasets/texts").json()["latest_version_id"] == result["id"]
    assert client.get("/api/datasets/texts/rows").json()["data"][0] == {"text": "padded text"}
    assert_error(client.post("/api/datasets/texts/repair", json={"version": "ds-nope"}), 404, "not_found")


def test_a_dataset_imported_with_the_cli_is_listed_by_the_api(client: TestClient, chat_file: Path,
                                                              settings: Settings) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from tunelab.cli.main import app

    runner = CliRunner()  # TUNELAB_HOME is the app's home (the tunelab_home fixture)
    imported = runner.invoke(app, ["datasets", "import", str(chat_file), "--name", "chat-demo"])
    assert imported.exit_code == 0, imported.output
    version_id = imported.output.split()[0]
    listed = client.get("/api/datasets").json()
    assert listed["count"] == 1 and listed["data"][0]["name"] == "chat-demo"
    dataset = client.get("/api/datasets/chat-demo").json()
    assert dataset["latest_version"]["id"] == version_id and dataset["latest_version"]["num_rows"] == 12
    assert client.get("/api/datasets/chat-demo/rows", params={"limit": 1}).json()["data"][0]["messages"]

    # and the other way round: an upload is in the CLI's list, and the API's delete empties it
    with chat_file.open("rb") as handle:
        assert client.post("/api/datasets", files={"file": ("other.jsonl", handle)},
                           data={"name": "uploaded"}).status_code == 201  # fmt: skip
    table = runner.invoke(app, ["datasets", "list"])
    assert table.exit_code == 0 and "chat-demo" in table.output and "uploaded" in table.output
    assert client.delete("/api/datasets/chat-demo").status_code == 204
    assert version_id in runner.invoke(app, ["datasets", "list"]).output  # "uploaded" still uses it
    assert client.delete("/api/datasets/uploaded").status_code == 204
    assert "chat-demo" not in runner.invoke(app, ["datasets", "list"]).output
    assert not any(settings.datasets_dir.iterdir())


def test_cli_import_refuses_a_path_like_name(chat_file: Path) -> None:
    from typer.testing import CliRunner

    from tunelab.cli.main import app

    result = CliRunner().invoke(app, ["datasets", "import", str(chat_file), "--name", "../escape"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput) and "--name" in result.exception.message
