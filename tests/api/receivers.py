"""Real local endpoints for notification tests: an HTTP receiver and an SMTP server on 127.0.0.1.

Both speak the real protocol (HTTP/1.1 POST with a JSON body; SMTP through
aiosmtpd), so a delivery that passes here would pass against Slack or a mail
relay, and one that is malformed fails.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.api.live import free_port


class Received:
    """What an endpoint got, with a wait that fails the test after a timeout."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, check: Callable[[Any], bool], timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for item in self.items:
                    if check(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching arrived in {timeout_s}s; got {self.items!r}")
                self._cond.wait(left)


@contextmanager
def http_receiver(status: int = 200) -> Iterator[tuple[str, Received]]:
    """A server that records each POST as {path, headers, body (parsed JSON)}; yields (base URL, received)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            received.add({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)})
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_receiver() -> Iterator[tuple[int, Received]]:
    """aiosmtpd on a free port recording each message as {mail_from, rcpt_tos, message}; yields (port, received)."""
    from aiosmtpd.controller import Controller

    received = Received()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message: Message = message_from_bytes(envelope.content)
            received.add({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "message": message})
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
