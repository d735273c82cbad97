"""`make serve`'s server for real: `python -m kvconsole.serve` in production mode with two
granian workers over HTTPS on loopback, and over plain HTTP behind a trusted proxy. What it
sends (no banner, the security headers, secure cookies, collected static files), and the
console's CSRF check and idle timeout on production settings."""

import re
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from kvconsole import devtls
from tests.processes import ROOT
from tests.production import add_person, prepare, production_environment

pytestmark = pytest.mark.slow

PASSWORD = "a long production password"
METRICS_TOKEN = "a scraper's token for this test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def started(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    # To a file, not a pipe: a pipe nobody reads would stop the server once its JSON lines
    # (two per request) filled it.
    log = Path(env["KVCONSOLE_VAR_DIR"]) / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "kvconsole.serve"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.2)
    server.kill()
    raise AssertionError("the server did not listen")


def stopped(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@dataclass(frozen=True)
class Served:
    base: str
    ca: Path
    env: dict[str, str]
    pid: int


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("production")
    port = free_port()
    env = production_environment(directory, port=port)
    tls = devtls.ensure(directory / "tls", ["localhost"], ["127.0.0.1"])
    env.update(
        {
            "KVCONSOLE_TLS_CERT": str(tls.certificate),
            "KVCONSOLE_TLS_KEY": str(tls.private_key),
            "KVCONSOLE_WORKERS": "2",
            "KVCONSOLE_THREADS": "1",
            "KVCONSOLE_METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    prepare(env)
    add_person(env, "alice", PASSWORD)
    # What a previous run's workers left: the server must not add it to its own counts.
    (directory / "metrics").mkdir()
    (directory / "metrics" / "counter_1.db").write_bytes(b"a previous run's values")
    server = started(env, port)
    try:
        yield Served(f"https://localhost:{port}", tls.ca_certificate, env, server.pid)
    finally:
        stopped(server)


def client(base: str, ca: Path) -> httpx.Client:
    return httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=ca), timeout=30)


def test_the_server_runs_two_workers(https_server: Served) -> None:
    # The launcher became granian, which runs the workers.
    server = psutil.Process(https_server.pid)
    assert "granian" in server.cmdline()
    assert len(server.children()) == 2


@pytest.mark.alone
def test_the_workers_share_their_metrics_from_a_fresh_directory(https_server: Served) -> None:
    metrics = Path(https_server.env["KVCONSOLE_VAR_DIR"]) / "metrics"
    assert not (metrics / "counter_1.db").exists()
    sent = 40

    def sign_in_page(_: int) -> int:
        # A connection of its own each, so that both workers take some.
        with client(https_server.base, https_server.ca) as browser:
            return browser.get("/signin/").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(sign_in_page, range(sent))) == {200}
    counted = set()
    for _ in range(6):
        with client(https_server.base, https_server.ca) as scraper:
            scraped = scraper.get(
                "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
            ).text
        found = re.search(
            r'^kvconsole_request_duration_seconds_count\{operation="signin",status="200"\} (\S+)$',
            scraped,
            re.MULTILINE,
        )
        assert found is not None, scraped
        counted.add(float(found[1]))
    # Whichever worker answered, the count is the deployment's: at least what this test sent
    # (others in the module may sign in too), the same from every scrape.
    assert len(counted) == 1 and counted.pop() >= sent
    assert {path.name.split("_")[-1] for path in metrics.glob("*.db")} >= {
        f"{worker.pid}.db" for worker in psutil.Process(https_server.pid).children()
    }


def test_pages_carry_the_security_headers_and_no_banner(
    https_server: Served,
) -> None:
    base, ca = https_server.base, https_server.ca
    with client(base, ca) as browser:
        page = browser.get("/signin/")
    assert page.status_code == 200
    headers = page.headers
    assert "transfer-encoding" not in headers
    assert headers["content-length"] == str(len(page.content))
    assert headers["server"] == ""
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-content-type-options"] == "nosniff"
    cookie = headers["set-cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_static_files_are_collected_and_served_by_whitenoise(
    https_server: Served,
) -> None:
    base, ca = https_server.base, https_server.ca
    with client(base, ca) as browser:
        html = browser.get("/signin/").text
        stylesheet = re.search(r'href="(/static/css/console\.[0-9a-f]{12}\.css)"', html)
        assert stylesheet is not None, "no content-hashed stylesheet"
        response = browser.get(stylesheet.group(1))
    assert response.status_code == 200
    assert "max-age=315360000" in response.headers["cache-control"]
    assert response.headers["server"] == ""


def test_the_vault_endpoint_answers_with_hsts_and_no_banner(
    https_server: Served,
) -> None:
    base, ca = https_server.base, https_server.ca
    port = base.rsplit(":", 1)[1]
    with client(base, ca) as browser:
        response = browser.get(
            "/keys?api-version=7.5", headers={"host": f"somevault.vault.localhost:{port}"}
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer authorization=")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    assert response.headers["server"] == ""
    # Sent whole, with its length: a chunked answer costs the server a sixth of a request.
    assert "transfer-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))


def sign_in(browser: httpx.Client) -> None:
    browser.get("/signin/")
    response = browser.post(
        "/signin/",
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"referer": f"{browser.base_url}/signin/"},
    )
    assert response.status_code == 302 and response.headers["location"] == "/"
    assert (
        "Secure" in response.headers["set-cookie"] and "HttpOnly" in response.headers["set-cookie"]
    )


def test_a_console_form_without_its_csrf_token_is_refused(
    https_server: Served,
) -> None:
    base, ca = https_server.base, https_server.ca
    with client(base, ca) as browser:
        sign_in(browser)
        assert browser.get("/").status_code == 200
        forged = browser.post(
            "/groups/new/",
            data={"name": "forged", "location": "westeurope"},
            headers={"referer": f"{base}/groups/"},
        )
        assert forged.status_code == 403
        assert browser.get("/").status_code == 200


def test_an_idle_session_ends(https_server: Served) -> None:
    base, ca, env = https_server.base, https_server.ca, https_server.env
    with client(base, ca) as browser:
        sign_in(browser)
        assert browser.get("/").status_code == 200
        # As if the idle time had passed: the session's expiry is behind us.
        with sqlite3.connect(env["KVCONSOLE_SQLITE_PATH"]) as database:
            database.execute(
                "UPDATE django_session SET expire_date = '2000-01-01 00:00:00' "
                "WHERE session_key = ?",
                (browser.cookies["sessionid"],),
            )
        response = browser.get("/vaults/")
    assert response.status_code == 302
    assert response.headers["location"] == "/signin/?next=/vaults/"


def test_plain_http_behind_a_trusted_proxy(tmp_path: Path) -> None:
    port = free_port()
    env = production_environment(tmp_path, port=port)
    env.update(
        {
            "KVCONSOLE_TRUSTED_PROXIES": "127.0.0.1",
            "KVCONSOLE_WORKERS": "1",
            "KVCONSOLE_THREADS": "1",
        }
    )
    prepare(env)
    server = started(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as proxy:
            forwarded = proxy.get(
                "/signin/",
                headers={
                    "host": "localhost",
                    "x-forwarded-proto": "https",
                    "x-forwarded-for": "203.0.113.9",
                },
            )
            # Without the proxy's word for it, a plain HTTP request is sent to HTTPS.
            direct = proxy.get("/signin/", headers={"host": "localhost"})
    finally:
        stopped(server)
    assert forwarded.status_code == 200
    assert forwarded.headers["strict-transport-security"].startswith("max-age=")
    assert direct.status_code == 301
    assert direct.headers["location"] == "https://localhost/signin/"
