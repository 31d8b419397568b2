"""A Hugging Face Hub stand-in: a real HTTP server on 127.0.0.1 answering the Hub's JSON.

It speaks the endpoints model search, checks and pushes use, as the Hub does:
``GET /api/models?search=&filter=&author=&sort=downloads&limit=&expand=...`` (a JSON list,
only ``_id``, ``id`` and the expanded properties per model, most downloads first) and
``GET /api/models/{org}/{name}`` (one model's JSON; an unknown one is HTTP 401 with
``X-Error-Code: RepoNotFound``, as the Hub answers anonymous callers). ``huggingface_hub``
talks to it through ``HfApi(endpoint=...)``; nothing of tunelab is replaced.

``online_hub`` points tunelab at it: HF_ENDPOINT set, and offline mode lifted for this test
only, explicitly, because the suite runs with HF_HUB_OFFLINE=1 (scripts/test.sh) and
huggingface_hub reads that once at import.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest


def _model(model_id: str, downloads: int, likes: int, *, pipeline: str = "text-generation", params: int | None = None,
           dtype: str = "BF16", license: str = "apache-2.0", gated: bool | str = False, extra_tags: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    author = model_id.split("/")[0]
    tags = ["transformers", "safetensors", pipeline, *extra_tags, f"license:{license}"]
    return {
        "_id": f"66{abs(hash(model_id)) % 10**20:020d}", "id": model_id, "modelId": model_id, "author": author,
        "downloads": downloads, "likes": likes, "pipeline_tag": pipeline, "tags": tags, "gated": gated,
        "private": False, "library_name": "transformers",
        "safetensors": {"parameters": {dtype: params}, "total": params} if params else None,
        "cardData": {"license": license, "language": ["en"]},
        "createdAt": "2024-07-18T08:56:00.000Z", "lastModified": "2024-09-25T17:00:57.000Z",
        "sha": "0e9e39f249a16976918f6564b8830bc894c89659",
        "siblings": [{"rfilename": "config.json"}, {"rfilename": "model.safetensors"}],
    }  # fmt: skip


HUB_MODELS: list[dict[str, Any]] = [
    _model("HuggingFaceTB/SmolLM2-135M-Instruct", 61_000, 180, params=134_515_008, extra_tags=("llama", "conversational")),
    _model("meta-llama/Llama-3.1-8B-Instruct", 50_000, 1_200, params=8_030_261_248, license="llama3.1",
           gated="manual", extra_tags=("llama", "conversational")),
    _model("mistralai/Mistral-7B-Instruct-v0.3", 45_000, 1_500, params=7_248_023_552, extra_tags=("mistral", "conversational")),
    _model("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 40_000, 1_100, params=1_100_048_384, extra_tags=("llama", "conversational")),
    _model("meta-llama/Llama-3.2-1B", 30_000, 900, params=1_235_814_400, license="llama3.2", gated="manual",
           extra_tags=("llama",)),
    _model("codellama/CodeLlama-7b-Instruct-hf", 20_000, 230, params=6_738_546_688, license="llama2",
           extra_tags=("llama", "code")),
    _model("meta-llama/Llama-2-7b-chat-hf", 10_000, 4_000, params=6_738_415_616, license="llama2", gated="manual",
           extra_tags=("llama",)),
    _model("EleutherAI/gpt-j-6b", 9_000, 1_400, params=6_050_882_784, dtype="F32", extra_tags=("gptj",)),
    _model("Qwen/Qwen2-VL-7B-Instruct", 8_000, 1_000, pipeline="image-text-to-text", params=8_291_375_616,
           extra_tags=("qwen2_vl", "conversational")),
]  # fmt: skip


@dataclass
class FakeHub:
    """The running server: its base URL and every request it answered (path, query)."""

    url: str
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    delay_s: float = 0.0
    tokens: set[str] = field(default_factory=lambda: {"hf_fake_write_token"})
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)  # repo id -> {"private": bool, "files": {path: bytes}}


def _listing(query: dict[str, list[str]]) -> list[dict[str, Any]]:
    search = (query.get("search") or [""])[0].lower()
    filters = query.get("filter") or []
    author = (query.get("author") or [None])[0]
    expand = query.get("expand") or []
    found = [
        m for m in HUB_MODELS
        if search in m["id"].lower()
        and all(f == m["pipeline_tag"] or f in m["tags"] for f in filters)
        and (author is None or m["author"] == author)
    ]  # fmt: skip
    if (query.get("sort") or [""])[0] == "downloads":
        found.sort(key=lambda m: m["downloads"], reverse=True)
    limit = int((query.get("limit") or ["1000"])[0])
    keep = {"_id", "id", *expand} if expand else {"_id", "id", "modelId", "likes", "downloads", "tags", "pipeline_tag",
                                                   "library_name", "createdAt", "private"}  # fmt: skip
    return [{k: v for k, v in m.items() if k in keep and v is not None} for m in found[:limit]]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            path = unquote(parts.path)
            hub.requests.append((path, query))
            if hub.delay_s:
                time.sleep(hub.delay_s)
            if path == "/api/models":
                self._send(200, _listing(query))
                return
            if path.startswith("/api/models/"):
                repo = path.removeprefix("/api/models/")
                for model in HUB_MODELS:
                    if model["id"] == repo:
                        self._send(200, {k: v for k, v in model.items() if v is not None})
                        return
                self._send(401, {"error": "Repository not found"},
                           {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})  # fmt: skip
                return
            self._send(404, {"error": "Not Found"})

        def do_POST(self) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((path, {}))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if token not in hub.tokens:
                self._send(401, {"error": "Invalid credentials in Authorization header"},
                           {"X-Error-Message": "Invalid credentials in Authorization header"})  # fmt: skip
                return
            if path == "/api/repos/create":
                asked = json.loads(body)
                repo_id = f"{asked['organization']}/{asked['name']}"
                private = asked.get("visibility") == "private" or asked.get("private") is True  # 1.x / 0.x clients
                hub.repos.setdefault(repo_id, {"private": private, "files": {}})
                self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            elif path == "/api/validate-yaml":
                self._send(200, {"errors": [], "warnings": []})
            elif path.startswith("/api/models/") and "/preupload/" in path:
                files = json.loads(body)["files"]
                self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                           for f in files]})  # fmt: skip
            elif path.startswith("/api/models/") and "/commit/" in path:
                repo_id = path.removeprefix("/api/models/").split("/commit/")[0]
                if repo_id not in hub.repos:
                    self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    return
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        value = item["value"]
                        hub.repos[repo_id]["files"][value["path"]] = base64.b64decode(value["content"])
                self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{'0' * 40}", "commitOid": "0" * 40})
            else:
                self._send(404, {"error": "Not Found"})

    return Handler


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """The Hub stand-in on a free 127.0.0.1 port, for the length of one test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    hub = FakeHub(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()


def go_online(monkeypatch: pytest.MonkeyPatch, endpoint: str, timeout_s: float = 5.0) -> None:
    """Let this test's tunelab reach ``endpoint`` as its Hub (overriding the suite's HF_HUB_OFFLINE)."""
    import huggingface_hub.constants

    from tunelab.models import hub
    from tunelab.settings import get_settings

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("TUNELAB_OFFLINE", raising=False)
    monkeypatch.setenv("TUNELAB_HUB_TIMEOUT_S", str(timeout_s))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # As if HF_ENDPOINT had been set before the process started: huggingface_hub 0.x reads it once at
    # import, and parses commit URLs against it (CommitInfo builds a RepoUrl without the API's endpoint).
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub, "_DOWN", {})
    get_settings.cache_clear()


@pytest.fixture
def online_hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """The fake Hub, with tunelab pointed at it and allowed online for this test."""
    go_online(monkeypatch, fake_hub.url)
    return fake_hub
