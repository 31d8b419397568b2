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


def test_names_are_labels_never_paths(client: TestClient, chat_file: Path, settings: Settings) -> None:
    """Any printable name is accepted, path-like ones too, and nothing is ever written under it."""
    data = chat_file.read_bytes()
    for name in ("../evil", "a/b", "..", "x\\y", "/etc/passwd"):
        response = client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": name})
        assert response.status_code == 201, response.text
        assert response.json()["name"] == name
        assert client.get(f"/api/datasets/{response.json()['id']}").json()["name"] == name
    assert client.get("/api/datasets").json()["count"] == 5
    assert [p.name for p in settings.datasets_dir.iterdir()] == [response.json()["version"]["id"]]
    assert not (settings.home.parent / "evil").exists() and not (settings.home / "a").exists()
    # a path-like *file name* is only a label too: the file lands under a server id
    response = client.post("/api/datasets", files={"file": ("../../../escape.jsonl", data)})
    assert response.status_code == 201, response.text
    assert not (settings.home.parent / "escape.jsonl").exists()
    assert not any("escape" in p.name for p in settings.home.parent.rglob("*"))


CONTROL = ["bad\x00name", "two\nlines", "tab\there", "bell\x07", "esc\x1b[31m", "c1\x85", "sep\u2028x"]


def test_control_characters_are_refused_everywhere(client: TestClient, chat_file: Path) -> None:
    data = chat_file.read_bytes()
    for name in CONTROL:
        response = client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": name})
        error = assert_error(response, 422, "invalid_input")
        assert "control character" in error["message"] and "`name`" in error["message"]
    assert "white space" in assert_error(
        client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "   "}), 422, "invalid_input"
    )["message"]
    assert "200" in assert_error(
        client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "x" * 201}), 422, "invalid_input"
    )["message"]
    tags = client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "ok", "tags": '["a\\u0000"]'})
    assert "tags" in assert_error(tags, 422, "invalid_input")["message"]
    job = {"configuration": {"model": "tiny-model", "dataset": str(chat_file)}, "name": "job\r\nname"}
    assert "`name`" in assert_error(client.post("/api/jobs", json=job), 422, "invalid_input")["message"]
    job = {"configuration": {"model": "tiny-model", "dataset": str(chat_file)}, "save": {"model_name": "m\x00"}}
    assert "model_name" in assert_error(client.post("/api/jobs", json=job), 422, "invalid_input")["message"]
    config = {"name": "conf\x1f", "model": "m", "dataset": "d"}
    assert_error(client.post("/api/configurations", json=config), 422, "invalid_input")
    assert client.get("/api/datasets").json()["count"] == 0


UNICODE_NAMES = ["Customer Support Q&A", "客服数据", "Résumé (v2) – l'équipe", "Ünïcödé 😀 & <tags>"]


def test_unicode_names_upload_list_and_become_a_jobs_dataset(client: TestClient, chat_file: Path,
                                                             settings: Settings) -> None:  # fmt: skip
    from urllib.parse import quote

    data = chat_file.read_bytes()
    ids = {}
    for name in UNICODE_NAMES:
        response = client.post("/api/datasets", files={"file": ("c.jsonl", data)},
                               data={"name": name, "tags": "support, 多语言"})  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["name"] == name and response.json()["tags"] == ["support", "多语言"]
        ids[name] = response.json()["id"]
    listed = {row["name"]: row for row in client.get("/api/datasets").json()["data"]}
    assert set(listed) == set(UNICODE_NAMES)
    for name in UNICODE_NAMES:  # by id, and by name in the URL (percent-encoded)
        assert client.get(f"/api/datasets/{ids[name]}").json()["name"] == name
        assert client.get(f"/api/datasets/{quote(name, safe='')}").json()["id"] == ids[name]
        rows = client.get(f"/api/datasets/{quote(name, safe='')}/rows", params={"limit": 1}).json()
        assert rows["count"] == 12
    # folders come from ids, never names
    assert not any(n in p.name for p in settings.home.rglob("*") for n in ("Customer", "客服"))

    for name in ("Customer Support Q&A", "客服数据"):
        body = {"name": f"Train on {name}", "tags": ["guide"],
                "configuration": {"model": "tiny-model", "dataset": name, "hyperparameters": {"max_steps": 1}}}  # fmt: skip
        response = client.post("/api/jobs", json=body)
        assert response.status_code == 201, response.text
        job = response.json()
        assert job["name"] == f"Train on {name}" and job["config"]["dataset"] == name
        assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "queued"


def test_tags_are_stored_merged_and_filter_the_list(client: TestClient, chat_file: Path) -> None:
    data = chat_file.read_bytes()
    first = client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "one", "tags": '["support", "en"]'})
    assert first.json()["tags"] == ["support", "en"]
    client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "two", "tags": "code"})
    client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "three"})
    again = client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "one", "tags": "v2, en"})
    assert again.json()["tags"] == ["support", "en", "v2"]  # a new upload adds tags, keeps the old ones
    assert client.get("/api/datasets/three").json()["tags"] == []

    def names(tag: str) -> list[str]:
        page = client.get("/api/datasets", params={"tag": tag}).json()
        assert page["count"] == len(page["data"])
        return sorted(row["name"] for row in page["data"])

    assert names("en") == ["one"] and names("code") == ["two"] and names("nope") == []
    assert client.get("/api/datasets").json()["count"] == 3
    assert_error(client.post("/api/datasets", files={"file": ("c.jsonl", data)}, data={"name": "x", "tags": "[oops"}),
                 422, "invalid_input")  # fmt: skip


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


def test_cli_import_takes_any_label_and_tags_but_refuses_control_characters(chat_file: Path, client: TestClient,
                                                                          settings: Settings) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from tunelab.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "import", str(chat_file), "--name", "../客服 Q&A", "--tag", "support",
                                 "--tag", "zh"])  # fmt: skip
    assert result.exit_code == 0, result.output
    dataset = client.get("/api/datasets", params={"tag": "zh"}).json()["data"][0]
    assert dataset["name"] == "../客服 Q&A" and dataset["tags"] == ["support", "zh"]
    assert not (settings.home.parent / "客服 Q&A").exists()
    listed = runner.invoke(app, ["datasets", "list", "--tag", "support"])
    assert listed.exit_code == 0 and "support, zh" in listed.output
    assert "客服" not in runner.invoke(app, ["datasets", "list", "--tag", "other"]).output

    refused = runner.invoke(app, ["datasets", "import", str(chat_file), "--name", "bad\x07name"])
    assert refused.exit_code != 0
    assert isinstance(refused.exception, InvalidInput) and "--name" in refused.exception.message
