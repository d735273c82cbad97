"""The vault endpoint while its database cannot do the work (restarting, failing over, too
busy): 503 in Azure's shape with Retry-After, never a 500, recorded when it can be."""

import json
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from accounts import tokens
from accounts.models import User
from keys import services as key_services
from kvconsole import hosts
from vaults import services as vault_services
from vaults.models import ActivityEntry, Vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def get_key(client: Client, system: User, vault: Vault, make_key: Any) -> Any:
    make_key("k", kty="EC")
    application = vault_services.application_create(actor=system, display_name="unavailable")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Crypto User",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{vault.name}",
    )
    token = tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token

    def send() -> Any:
        return client.get(
            "/keys/k/?api-version=7.5",
            headers={
                "host": f"{vault.name}.vault.localhost:8443",
                "authorization": f"Bearer {token}",
            },
        )

    return send


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content) == {
        "error": {
            "code": "ServiceUnavailable",
            "message": "The service is temporarily unavailable; retry the request later.",
        }
    }


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_database_that_cannot_do_the_work_is_a_503_and_recorded(
    get_key: Any, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def unreachable(**kwargs: object) -> None:
        raise error("server closed the connection unexpectedly")

    monkeypatch.setattr(key_services, "key_get", unreachable)
    response = get_key()
    assert_unavailable(response)
    assert "closed the connection" not in response.content.decode()
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.result, entry.status_code) == ("KeyGet", "Failure", 503)


def test_when_not_even_the_refusal_can_be_recorded_it_is_still_a_503(
    get_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(**kwargs: object) -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(key_services, "key_get", unreachable)
    monkeypatch.setattr(vault_services, "request_refuse", unreachable)
    before = ActivityEntry.objects.count()
    assert_unavailable(get_key())
    assert ActivityEntry.objects.count() == before


def unreachable_host(host: str) -> None:
    raise OperationalError("could not connect to server")


def test_a_host_lookup_that_cannot_reach_the_database_is_a_503(
    get_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosts, "vault_name_for_host", unreachable_host)
    assert_unavailable(get_key())


def test_the_next_request_after_the_database_is_back_succeeds(
    get_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(hosts, "vault_name_for_host", unreachable_host)
        assert get_key().status_code == 503
    assert get_key().status_code == 200
