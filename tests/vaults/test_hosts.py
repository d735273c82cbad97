"""Vault hosts: `{vault}.{suffix}` and host aliases reach the vault endpoint, any other host
the console."""

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from kvconsole.errors import BadParameter, Conflict, Forbidden
from tests.cli import kv, kv_fails
from tests.factories import UserFactory, VaultFactory
from vaults import selectors, services
from vaults.models import ActivityEntry, Vault
from vaults.selectors import vault_name_for_host

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("host", "vault"),
    [
        ("payments.vault.localhost:8443", "payments"),
        ("PAYMENTS.Vault.Localhost", "payments"),
        ("payments.vault.localhost", "payments"),
        ("a.b.vault.localhost:8443", None),
        ("vault.localhost:8443", None),
        ("localhost:8443", None),
        ("127.0.0.1:8443", None),
    ],
)
def test_vault_host_names(host: str, vault: str | None) -> None:
    assert vault_name_for_host(host) == vault


def test_aliases_name_a_vault_until_replaced(
    system: User, vault: Vault, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.vault_update(
            actor=system, name=vault.name, host_aliases=["127.0.0.1:9443", "[::1]:9443"]
        )
    assert vault_name_for_host("127.0.0.1:9443") == vault.name
    assert vault_name_for_host("[::1]:9443") == vault.name
    with django_capture_on_commit_callbacks(execute=True):
        services.vault_update(actor=system, name=vault.name, host_aliases=["KV.internal:443"])
    assert vault_name_for_host("127.0.0.1:9443") is None
    assert vault_name_for_host("kv.internal") == vault.name
    assert [alias.host for alias in vault.host_aliases.all()] == ["kv.internal"]


@pytest.mark.parametrize(
    "alias",
    [
        "not a host",
        "host:port",
        "other.vault.localhost:8443",
        "http://127.0.0.1:8443",
    ],
)
def test_bad_aliases_are_refused(system: User, vault: Vault, alias: str) -> None:
    with pytest.raises(BadParameter):
        services.vault_update(actor=system, name=vault.name, host_aliases=[alias])
    assert not vault.host_aliases.exists()


def test_the_console_host_is_no_alias(system: User, vault: Vault) -> None:
    with pytest.raises(BadParameter, match="console"):
        services.vault_update(
            actor=system, name=vault.name, host_aliases=[settings.KVCONSOLE_CONSOLE_HOST]
        )


def test_an_alias_belongs_to_one_vault(
    system: User, vault: Vault, django_capture_on_commit_callbacks
) -> None:
    other = VaultFactory.create()
    with django_capture_on_commit_callbacks(execute=True):
        services.vault_update(actor=system, name=vault.name, host_aliases=["127.0.0.1:9443"])
    with pytest.raises(Conflict):
        services.vault_update(actor=system, name=other.name, host_aliases=["127.0.0.1:9443"])
    assert vault_name_for_host("127.0.0.1:9443") == vault.name


def test_the_cli_sets_and_clears_aliases(vault: Vault) -> None:
    shown = kv("vault", "update", "--name", vault.name, "--host-aliases", "127.0.0.1:9443")
    assert shown["properties"]["hostAliases"] == ["127.0.0.1:9443"]
    assert (
        kv("vault", "update", "--name", vault.name, "--host-aliases")["properties"]["hostAliases"]
        == []
    )
    assert "invalid" in str(
        kv_fails("vault", "update", "--name", vault.name, "--host-aliases", "a b")
    )


def test_requests_are_routed_by_host(
    system: User, vault: Vault, client: Client, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.vault_update(actor=system, name=vault.name, host_aliases=["127.0.0.1:9443"])
    for host in (f"{vault.name}.vault.localhost:8443", "127.0.0.1:9443"):
        response = client.get("/keys?api-version=7.5", HTTP_HOST=host)
        assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None and (entry.operation, entry.vault_name) == ("KeyList", vault.name)
    # The console's own host answers with the console (sign-in first), not the API.
    console = client.get("/keys", HTTP_HOST="localhost:8443")
    assert console.status_code in (302, 404) and "WWW-Authenticate" not in console.headers


def test_only_deployment_principals_set_aliases(system: User, vault: Vault) -> None:
    contributor = UserFactory.create()
    services.role_assignment_create(
        actor=system,
        assignee=contributor.username,
        role="Key Vault Contributor",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{vault.name}",
    )
    services.vault_update(actor=contributor, name=vault.name, tags={"may": "edit"})
    with pytest.raises(Forbidden):
        services.vault_update(actor=contributor, name=vault.name, host_aliases=["127.0.0.1:9443"])
    assert not vault.host_aliases.exists()


def test_the_console_host_stays_the_consoles(
    system: User, vault: Vault, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.KVCONSOLE_CONSOLE_HOST = "console.example:443"
    with pytest.raises(BadParameter, match="console"):
        services.vault_update(actor=system, name=vault.name, host_aliases=["console.example"])
    # An alias made before the console moved there does not take the console's host.
    settings.KVCONSOLE_CONSOLE_HOST = "elsewhere:8443"
    with django_capture_on_commit_callbacks(execute=True):
        services.vault_update(actor=system, name=vault.name, host_aliases=["console.example"])
    settings.KVCONSOLE_CONSOLE_HOST = "console.example:443"
    assert vault_name_for_host("console.example") is None
    assert vault_name_for_host("console.example:443") is None


def test_a_request_without_a_host_is_the_consoles_without_a_lookup(
    django_assert_num_queries: Any,
) -> None:
    selectors.host_aliases.forget()
    with django_assert_num_queries(0):
        assert vault_name_for_host("") is None
