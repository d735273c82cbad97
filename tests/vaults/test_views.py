"""The console overview page."""

import pytest
from django.test import Client

from tests.factories import VaultFactory

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/"


def test_owner_sees_vaults_with_live_key_counts(client: Client, owner, make_key, vault) -> None:
    make_key("one", kty="EC")
    make_key("two", kty="EC")
    VaultFactory.create(name="empty-vault")
    client.force_login(owner)

    response = client.get("/")

    assert response.status_code == 200
    rows = {vault.name: vault.key_count for vault in response.context["vaults"]}
    assert rows == {vault.name: 2, "empty-vault": 0}
    assert vault.uri in response.content.decode()


def test_outsider_sees_no_vaults(client: Client, outsider, vault) -> None:
    client.force_login(outsider)
    response = client.get("/")
    assert response.status_code == 200
    assert list(response.context["vaults"]) == []
    assert vault.name not in response.content.decode()


def test_page_sends_a_self_only_content_security_policy(client: Client, owner) -> None:
    client.force_login(owner)
    policy = client.get("/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
