"""Real network peers for automation tests: an SMTP server (aiosmtpd) and an HTTP receiver
that verifies Standard Webhooks signatures with the `standardwebhooks` package."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.procs import free_port


class _Collect:
    def __init__(self, sink: list[Message], stamps: list[float]) -> None:
        self.sink, self.stamps = sink, stamps

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.stamps.append(time.time())
        self.sink.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on a free port, collecting every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self.received_at: list[float] = []
        self.controller = Controller(
            _Collect(self.messages, self.received_at), hostname="127.0.0.1", port=self.port
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def by_id(self) -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = {}
        for m in self.messages:
            out.setdefault(str(m["X-Liftoff-Message-Id"]), []).append(m)
        return out


@dataclass
class Received:
    """One request the receiver got, and whether its signature verified."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any = None


@dataclass
class WebhookReceiver:
    """A threaded HTTP server: verifies signatures with `secret`, answers per `respond`."""

    secret: str | None = None
    respond: Callable[[Received, int], tuple[int, dict[str, str]]] = lambda r, n: (200, {})
    received: list[Received] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, payload = False, None
                if receiver.secret:
                    try:
                        payload = Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                got = Received(self.path, headers, body, verified, payload)
                receiver.received.append(got)
                status, extra = receiver.respond(got, len(receiver.received))
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[Any]:
        return [json.loads(r.body) for r in self.received]
