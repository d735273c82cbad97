"""A live HTTPS deployment for tests that drive kvconsole with the Azure SDKs.

The server runs in a thread of the test process (Django's LiveServerThread, behind TLS with a
development CA of its own), so it shares the test database. It serves the console host
(`localhost:PORT`, the token service) and every vault host: `{vault}.vault.localhost:PORT`
resolves to the loopback address inside this process, so the SDKs' challenge-resource check
stays on, as it would against Azure.
"""

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections
from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler

from kvconsole import devtls

SUFFIX = "vault.localhost"


@dataclass
class RequestLog:
    """Every request the server answered: (host, method, path)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: list[tuple[str, str, str]] = field(default_factory=list)

    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            with self.lock:
                self.entries.append(
                    (environ.get("HTTP_HOST", ""), environ["REQUEST_METHOD"], environ["PATH_INFO"])
                )
            return app(environ, start_response)

        return logged

    def since(self, mark: int) -> list[tuple[str, str, str]]:
        with self.lock:
            return list(self.entries[mark:])

    def mark(self) -> int:
        with self.lock:
            return len(self.entries)


class _HttpsRequestHandler(QuietWSGIRequestHandler):
    def get_environ(self) -> dict[str, str]:
        environ = super().get_environ()
        # The request came over TLS: Django then sees https (secure cookies, CSRF origins).
        environ["HTTPS"] = "on"
        return environ


class _HttpsThread(LiveServerThread):
    def __init__(self, tls: devtls.TlsFiles, log: RequestLog, **kwargs: Any) -> None:
        self.tls = tls
        # Django calls this the static-files handler; here it wraps the site to log requests.
        super().__init__("127.0.0.1", static_handler=log.wrap, **kwargs)  # type: ignore[arg-type]

    def _create_server(self, connections_override: Any = None) -> ThreadedWSGIServer:
        server = ThreadedWSGIServer(
            (self.host, self.port),
            _HttpsRequestHandler,
            allow_reuse_address=False,
            connections_override=connections_override,
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.certificate, self.tls.private_key)
        # The handshake happens in each request's thread, not in the accepting loop.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        return server


@dataclass(frozen=True)
class LiveDeployment:
    port: int
    ca_file: str
    log: RequestLog

    @property
    def authority(self) -> str:
        return f"https://localhost:{self.port}"

    def vault_url(self, vault_name: str) -> str:
        return f"https://{vault_name}.{SUFFIX}:{self.port}"


@contextmanager
def live_deployment(directory: Path) -> Iterator[LiveDeployment]:
    tls = devtls.ensure(directory, ["localhost", f"*.{SUFFIX}", SUFFIX], ["127.0.0.1", "::1"])
    log = RequestLog()
    shared = {}
    for connection in connections.all():
        if connection.vendor == "sqlite" and connection.is_in_memory_db():  # type: ignore[attr-defined]
            connection.inc_thread_sharing()
            shared[connection.alias] = connection
    thread = _HttpsThread(tls, log, connections_override=shared)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield LiveDeployment(thread.port, str(tls.ca_certificate), log)
    finally:
        # Sharing stays on: a thread serving a kept-alive connection may outlive the server
        # and still close its database connection on the way out.
        thread.terminate()


@contextmanager
def vault_hosts_resolve_locally() -> Iterator[None]:
    """Within the block, `*.vault.localhost` resolves to 127.0.0.1 in this process, as it
    does on machines whose resolver maps *.localhost to the loopback."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith("." + SUFFIX):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original
