"""Evaluation fixtures: a small QA file, a real fake OpenAI-compatible judge on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.api.live import free_port

QA = [("What is the capital of France?", "Paris"), ("What is 2 + 2?", "4"), ("Who wrote Romeo and Juliet?", "Shakespeare"),
      ("Name a primary color.", "Red")]  # fmt: skip


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in QA))
    return path


@pytest.fixture
def openai_judge() -> Iterator[Callable[[Callable[[dict[str, Any]], tuple[int, str]]], str]]:
    """An OpenAI-compatible chat server whose answers a test writes: ``start(answer) -> base URL``.

    ``answer(body) -> (status, content)`` (``body["_authorization"]`` is the request's header); it speaks the real HTTP protocol and shape, standing in
    for an outside service (OpenAI, vLLM), so a request that passes here is well-formed there.
    """
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[dict[str, Any]], tuple[int, str]]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, content = answer({**body, "_authorization": self.headers.get("Authorization")})
                payload = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
                data = payload.encode() if status == 200 else b'{"error": "boom"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
