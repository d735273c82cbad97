"""Real receivers on loopback for the delivery tests: an HTTPS webhook receiver that checks
signatures as a customer's would, and an SMTP server (aiosmtpd).

The webhook receiver verifies with its own HMAC code, not kvconsole's, so a signature that
kvconsole computed wrongly is caught.
"""

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from kvconsole import devtls


def tls_files(directory: Path) -> devtls.TlsFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost."""
    return devtls.ensure(directory, ["localhost"], ["127.0.0.1"])


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: HMAC-SHA256 of the raw body with the secret, in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def delivery_id(self) -> str:
        return self.headers.get("x-kvconsole-delivery", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A threaded HTTPS server. Each path has a secret; a body whose signature does not
    verify gets 401. `answer` sets the status of valid deliveries (e.g. 503 to play a
    failing receiver); `hang` makes it hold every request until released."""

    tls: devtls.TlsFiles
    secrets: dict[str, str] = field(default_factory=dict)
    answer: int = 200
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    hang: threading.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str | None = None) -> list[Delivery]:
        with self._lock:
            return [
                item
                for item in self.deliveries
                if 200 <= item.status < 300 and (path is None or item.path == path)
            ]

    def start(self) -> "WebhookReceiver":
        receiver = self
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.certificate, self.tls.private_key)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                if receiver.hang is not None:
                    receiver.hang.wait(30)
                secret = receiver.secrets.get(self.path)
                valid = secret is not None and verify(
                    secret, body, headers.get("x-kvconsole-signature")
                )
                status = receiver.answer if valid else 401
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(self.path, headers, body, status, time.monotonic())
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up on a hanging request has closed its connection.
                pass

            def finish_request(self, request: Any, client_address: Any) -> None:
                # The TLS handshake happens in the connection's own thread.
                try:
                    wrapped = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                super().finish_request(wrapped, client_address)

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start() (on the same port)."""
        if self.hang is not None:
            self.hang.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def webhook_receiver(tls: devtls.TlsFiles, **options: Any) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(tls, **options).start()
    try:
        yield receiver
    finally:
        receiver.stop()


class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1; `messages` holds (recipients, message) as received."""

    port: int = field(default_factory=free_port)
    _handler: _Collect = field(default_factory=_Collect)
    _controller: Controller | None = None

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return self._handler.messages

    def start(self) -> "SmtpServer":
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
