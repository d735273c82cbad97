"""kvconsole served by granian over plain HTTP on loopback, for tests of the real server."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import requests

from tests.processes import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    environment: dict[str, str], *, workers: int = 1, stdout: int | IO[bytes] = subprocess.DEVNULL
) -> Iterator[str]:
    """The base URL of the deployment of `environment`, served until the block ends."""
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers), "--blocking-threads", "1"),
            "--no-ws",
            *("--log-level", "warning", "kvconsole.wsgi:application"),
        ],
        cwd=ROOT,
        env={**environment, "KVCONSOLE_SECURE_COOKIES": "0"},
        stdout=stdout,
    )
    try:
        base = f"http://localhost:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "granian did not start"
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
