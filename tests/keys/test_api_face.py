"""The vault endpoint as a face, through Django's test client: what it costs per request,
the headers it sends, how it answers what the SDKs send that Python's does not, and a
failure it did not expect."""

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import tokens
from accounts.models import Application, User
from keys import services as key_services
from keys.models import KeyVersion
from vaults import services as vault_services
from vaults.models import ActivityEntry, Vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def caller(system: User, vault: Vault) -> Application:
    application = vault_services.application_create(actor=system, display_name="face-test")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Crypto Officer",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{vault.name}",
    )
    return application


@pytest.fixture
def call(client: Client, vault: Vault, caller: Application) -> Any:
    token = tokens.issue_access_token(caller, audience=tokens.vault_resource()).access_token

    def send(
        method: str, path: str, body: object = None, raw: bytes | None = None, **headers: str
    ) -> Any:
        return client.generic(
            method,
            path,
            data=raw if raw is not None else json.dumps(body) if body is not None else b"",
            content_type="application/json",
            headers={
                "host": f"{vault.name}.vault.localhost:8443",
                "authorization": f"Bearer {token}",
                **headers,
            },
        )

    return send


def test_a_request_with_a_known_token_costs_three_queries(call: Any, make_key: Any) -> None:
    make_key("signer", kty="EC")
    body = {"alg": "ES256", "value": "A" * 43}
    assert call("POST", "/keys/signer//sign?api-version=7.5", body).status_code == 200
    # The key's lookup, the caller's grants (and enabled state), the activity entry: the
    # token is neither verified nor its principal loaded again.
    with CaptureQueriesContext(connection) as queries:
        assert call("POST", "/keys/signer//sign?api-version=7.5", body).status_code == 200
    # On PostgreSQL an append inside a transaction (here the test's own; a request has none)
    # runs in a savepoint, so that it can retry: not a query of the request's.
    statements = [
        query["sql"]
        for query in queries.captured_queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    assert len(statements) == 3, statements


def test_headers_tie_the_answer_to_its_activity_entry(call: Any, make_key: Any) -> None:
    make_key("k", kty="EC")
    response = call("GET", "/keys/k/?api-version=7.6", **{"x-ms-client-request-id": "req-1"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    assert response["x-ms-client-request-id"] == "req-1"
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert entry.request_id == response["x-ms-request-id"] and entry.correlation_id == "req-1"


def test_the_javascript_sdks_encoded_query_name_is_understood(call: Any, make_key: Any) -> None:
    make_key("k", kty="EC")
    assert call("GET", "/keys/k/?api%2Dversion=2025-07-01").status_code == 200


def test_empty_attributes_change_nothing(call: Any, make_key: Any) -> None:
    version = make_key("k", kty="EC", enabled=False)
    response = call("PATCH", "/keys/k/?api-version=7.5", {"attributes": {}, "tags": {"a": "b"}})
    assert response.status_code == 200
    stored = KeyVersion.objects.get(pk=version.pk)
    assert (stored.enabled, stored.tags) == (False, {"a": "b"})


def test_a_method_a_path_does_not_have_is_recorded(call: Any) -> None:
    response = call("DELETE", "/keys/k/create?api-version=7.5")
    assert response.status_code == 404 and response.json()["error"]["code"] == "NotFound"
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None and (entry.operation, entry.result) == (
        "UnsupportedRequest",
        "NotFound",
    )


def test_an_unexpected_failure_is_a_500_that_says_nothing_of_itself(
    call: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_key("k", kty="EC")

    def broken(**kwargs: object) -> None:
        raise RuntimeError("secret detail from deep inside")

    monkeypatch.setattr(key_services, "key_get", broken)
    response = call("GET", "/keys/k/?api-version=7.5")
    assert response.status_code == 500
    assert "secret detail" not in response.content.decode()
    assert response.json()["error"]["code"] == "InternalError"
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None and (entry.operation, entry.result) == ("KeyGet", "Failure")


def test_a_cached_token_of_an_application_disabled_since_lists_nothing(
    client: Client, system: User, vault: Vault, make_key: Any
) -> None:
    key = make_key("mine", kty="EC").key
    application = vault_services.application_create(actor=system, display_name="lister")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Reader",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{vault.name}/keys/{key.name}",
    )
    token = tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token
    headers = {"host": f"{vault.name}.vault.localhost:8443", "authorization": f"Bearer {token}"}
    listed = client.get("/keys?api-version=7.5", headers=headers)
    assert [item["kid"].rsplit("/", 1)[1] for item in listed.json()["value"]] == ["mine"]
    vault_services.application_update(
        actor=system, client_id=str(application.client_id), enabled=False
    )
    refused = client.get("/keys?api-version=7.5", headers=headers)
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None and (entry.operation, entry.result) == ("KeyList", "Unauthorized")


@pytest.mark.parametrize(
    "body",
    [b'{"kty": "EC", "attributes": {"nbf": NaN}}', b'{"kty": "EC", "x": Infinity}', b"[" * 100_000],
)
def test_bodies_python_would_choke_on_are_refused(call: Any, body: bytes) -> None:
    response = call("POST", "/keys/new/create?api-version=7.5", raw=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "BadParameter"


def test_post_to_a_key_is_no_restore(call: Any, make_key: Any) -> None:
    make_key("restore", kty="EC")
    assert call("GET", "/keys/restore?api-version=7.5").status_code == 200
    response = call("POST", "/keys/other?api-version=7.5", {"value": "AAAA"})
    assert response.status_code == 404
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None and entry.operation == "UnsupportedRequest"
