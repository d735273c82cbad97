"""The edge of every request: a trusted proxy's X-Forwarded-* headers (believed only from
it), and the security headers of the console, the admin, static files and the vault
endpoint."""

from typing import Any

import pytest
from django.test import Client

from accounts import tokens
from accounts.models import Application, User
from tests.factories import UserFactory
from vaults import services as vault_services
from vaults.models import ActivityEntry, Face, Operation, Vault

pytestmark = pytest.mark.django_db

PROXY = "10.1.2.3"
CLIENT = "203.0.113.9"
SPOOFED = "198.51.100.66"


@pytest.fixture
def behind_proxy(settings: Any) -> None:
    settings.KVCONSOLE_TRUSTED_PROXIES = ["10.0.0.0/8"]


def sign_in_failure(client: Client, **extra: Any) -> ActivityEntry:
    """A failed sign-in's record (every sign-in attempt is recorded with its address)."""
    person = UserFactory.create()
    client.post("/signin/", {"username": person.username, "password": "wrong"}, **extra)
    entry = ActivityEntry.objects.filter(operation=Operation.SIGN_IN).order_by("-seq").first()
    assert entry is not None
    return entry


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(behind_proxy: None) -> None:
    entry = sign_in_failure(Client(), REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_FOR=CLIENT)
    assert entry.client_ip == "192.0.2.50"


def test_forwarded_headers_are_ignored_when_no_proxy_is_configured() -> None:
    entry = sign_in_failure(Client(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert entry.client_ip == PROXY


def test_a_trusted_proxy_names_the_client(behind_proxy: None) -> None:
    entry = sign_in_failure(Client(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert (entry.client_ip, entry.face) == (CLIENT, Face.CONSOLE)


def test_an_address_the_client_put_before_the_proxies_is_not_believed(
    behind_proxy: None,
) -> None:
    # The client sent "X-Forwarded-For: SPOOFED"; its proxy appended what it saw, then a
    # second trusted proxy appended the first.
    entry = sign_in_failure(
        Client(),
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"{SPOOFED}, {CLIENT}, 10.9.9.9",
    )
    assert entry.client_ip == CLIENT


def test_a_forwarded_value_that_is_no_address_stops_at_the_proxy(behind_proxy: None) -> None:
    entry = sign_in_failure(Client(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="not-an-address")
    assert entry.client_ip == PROXY


def test_the_sign_in_throttle_counts_the_forwarded_client(
    behind_proxy: None, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    person = UserFactory.create()
    client = Client()
    for _ in range(2):
        client.post(
            "/signin/",
            {"username": person.username, "password": "wrong"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=CLIENT,
        )
    # Another client behind the same proxy is not locked out with the first.
    other = client.post(
        "/signin/",
        {"username": person.username, "password": "correct horse battery staple"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="203.0.113.10",
    )
    assert other.status_code == 302
    locked = Client().post(
        "/signin/",
        {"username": person.username, "password": "correct horse battery staple"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=CLIENT,
    )
    assert locked.status_code == 429


@pytest.fixture
def token(system: User, vault: Vault) -> str:
    application: Application = vault_services.application_create(actor=system, display_name="edge")
    return tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token


def test_the_vault_endpoint_records_the_forwarded_client_only_from_a_trusted_proxy(
    behind_proxy: None, vault: Vault, token: str
) -> None:
    def list_keys(peer: str, host_header: str = "HTTP_HOST") -> ActivityEntry:
        meta: dict[str, Any] = {
            "REMOTE_ADDR": peer,
            "HTTP_X_FORWARDED_FOR": CLIENT,
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            host_header: f"{vault.name}.vault.localhost:8443",
        }
        Client().get("/keys?api-version=7.5", **meta)
        entry = ActivityEntry.objects.order_by("-seq").first()
        assert entry is not None and entry.face == Face.API
        return entry

    assert list_keys(PROXY).client_ip == CLIENT
    assert list_keys("192.0.2.50").client_ip == "192.0.2.50"
    # The proxy's Host is its own; X-Forwarded-Host says which vault was asked for.
    entry = list_keys(PROXY, "HTTP_X_FORWARDED_HOST")
    assert (entry.operation, entry.vault_name) == (Operation.KEY_LIST, vault.name)


def test_a_trusted_proxy_says_the_request_was_https(behind_proxy: None, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    by_proxy = client.get("/signin/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")
    assert by_proxy.status_code == 200
    spoofed = client.get("/signin/", REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_PROTO="https")
    assert spoofed.status_code == 301
    assert spoofed["Location"].startswith("https://")


# --- headers ---------------------------------------------------------------------------------


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def assert_no_banner(response: Any) -> None:
    assert response["Server"] == ""
    for name, value in response.items():
        assert "django" not in f"{name}: {value}".lower(), name
        assert "granian" not in f"{name}: {value}".lower(), name


def test_console_pages_send_the_security_headers(client: Client, settings: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 86400
    response = client.get("/signin/", secure=True)
    for name, value in SECURITY_HEADERS.items():
        assert response[name] == value
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "data:" not in policy
    assert response["Strict-Transport-Security"] == "max-age=86400; includeSubDomains"
    assert_no_banner(response)
    cookie = response.cookies["csrftoken"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


def test_the_session_cookie_is_secure_and_http_only(client: Client) -> None:
    person = UserFactory.create()
    response = client.post(
        "/signin/", {"username": person.username, "password": "correct horse battery staple"}
    )
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


def test_static_files_and_the_admin_carry_no_banner(client: Client) -> None:
    assert_no_banner(client.get("/static/css/console.css"))
    assert_no_banner(client.get("/admin/"))


def test_the_vault_endpoint_sends_hsts_as_configured(
    client: Client, vault: Vault, settings: Any
) -> None:
    host = f"{vault.name}.vault.localhost:8443"
    settings.SECURE_HSTS_SECONDS = 600
    response = client.get("/keys?api-version=7.5", HTTP_HOST=host)
    assert response.status_code == 401
    assert response["Strict-Transport-Security"] == "max-age=600; includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert_no_banner(response)
    settings.SECURE_HSTS_SECONDS = 0
    assert "Strict-Transport-Security" not in client.get("/keys", HTTP_HOST=host)


def test_an_oversized_vault_request_gets_azure_error_body_unread(
    vault: Vault, token: str, settings: Any
) -> None:
    settings.KVCONSOLE_MAX_REQUEST_BYTES = 64
    response = Client().post(
        "/keys/k/create?api-version=7.5",
        data=b'{"kty": "EC", "tags": {"padding": "' + b"x" * 100 + b'"}}',
        content_type="application/json",
        HTTP_HOST=f"{vault.name}.vault.localhost:8443",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 413
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "RequestBodyTooLarge"
    assert "at most 64 are accepted" in body["error"]["message"]
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.status_code, entry.face) == (Operation.KEY_CREATE, 413, Face.API)
