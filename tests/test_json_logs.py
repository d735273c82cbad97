"""The JSON log lines (kvconsole/jsonlog.py): one per committed activity entry and one per
request, in Azure's resource-log fields, with nothing secret in them.

The tests run with real commits (transactional_db): an entry's line follows its commit.
"""

import base64
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import transaction
from django.test import Client

from accounts import tokens
from accounts.models import Application, User
from keys import events as key_events
from keys import services as key_services
from keys.models import Key
from kvconsole import jsonlog
from tests.conftest import Personas
from tests.granian import serving
from tests.material import MaterialWatch
from tests.processes import make_deployment, run_kv
from vaults import services as vault_services
from vaults.models import ActivityEntry, Vault

pytestmark = pytest.mark.django_db(transaction=True)

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
USER_AGENT = "azsdk-python-keyvault-keys/4.11.3 Python/3.13"


class Lines:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def of(self, category: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["category"] == category]

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def lines() -> Iterator[Lines]:
    """The lines written meanwhile, whatever KVCONSOLE_JSON_LOGS says in this environment."""
    captured = Lines()
    loggers = (jsonlog.ACTIVITY, jsonlog.REQUESTS)
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    with jsonlog.lines_to(captured.stream):
        yield captured
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def scope_of(vault: Vault) -> str:
    group = vault.resource_group.name
    return f"/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault.name}"


class Abandoned(Exception):
    pass


def create_in_an_abandoned_transaction(actor: User, vault: Vault, name: str) -> None:
    with transaction.atomic():
        key_services.key_create(actor=actor, vault_name=vault.name, name=name, kty="EC")
        raise Abandoned


@pytest.fixture
def caller(system: User, vault: Vault) -> Application:
    application = vault_services.application_create(actor=system, display_name="logged")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Crypto User",
        scope=scope_of(vault),
    )
    return application


def vault_call(
    client: Client, vault: Vault, token: str | None, path: str, body: object, **headers: str
) -> Any:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return client.post(
        path,
        json.dumps(body),
        content_type="application/json",
        headers={"host": f"{vault.name}.vault.localhost:8443", **headers},
    )


def without_timing(line: dict[str, Any]) -> dict[str, Any]:
    """The line less its time and duration, once they are checked for shape."""
    assert TIME.match(line["time"]), line["time"]
    assert isinstance(line["durationMs"], float | int) and line["durationMs"] >= 0
    return {name: value for name, value in line.items() if name not in ("time", "durationMs")}


def test_a_vault_endpoint_sign_is_one_audit_line_and_one_request_line(
    client: Client,
    vault: Vault,
    caller: Application,
    make_key: Any,
    lines: Lines,
    no_key_material_in_responses: MaterialWatch,
) -> None:
    make_key("signer", kty="RSA", size=2048)
    token = tokens.issue_access_token(caller, audience=tokens.vault_resource()).access_token
    digest = hashlib.sha256(b"pay 10 EUR").digest()
    lines.clear()
    response = vault_call(
        client,
        vault,
        token,
        "/keys/signer//sign?api-version=7.5&$skiptoken=not-logged",
        {"alg": "RS256", "value": b64url(digest)},
        **{"x-ms-client-request-id": "req-1", "user-agent": USER_AGENT},
    )
    assert response.status_code == 200
    audit, request = lines.all()
    identity = {"claim": {"oid": str(caller.user.oid), "appid": str(caller.client_id)}}
    request_uri = f"http://{vault.name}.vault.localhost:8443/keys/signer//sign?api-version=7.5"
    version = Key.objects.get(name="signer").current_version
    assert version is not None
    assert without_timing(audit) == {
        "resourceId": vault.resource_id,
        "operationName": "KeySign",
        "operationVersion": "7.5",
        "category": "AuditEvent",
        "resultType": "Success",
        "resultSignature": "OK",
        "resultDescription": "",
        "callerIpAddress": "127.0.0.1",
        "correlationId": "req-1",
        "identity": identity,
        "properties": {
            "id": f"vaults/{vault.name}/keys/signer/{version.version}",
            "httpStatusCode": 200,
            "face": "api",
            "requestId": response["x-ms-request-id"],
            "clientInfo": USER_AGENT,
            "requestUri": request_uri,
        },
    }
    assert without_timing(request) == {
        "resourceId": vault.resource_id,
        "operationName": "KeySign",
        "operationVersion": "7.5",
        "category": "Request",
        "resultType": "Success",
        "resultSignature": "OK",
        "resultDescription": "",
        "callerIpAddress": "127.0.0.1",
        "correlationId": "req-1",
        "identity": identity,
        "properties": {
            "clientInfo": USER_AGENT,
            "requestUri": request_uri,
            "httpMethod": "POST",
            "httpStatusCode": 200,
            "requestId": response["x-ms-request-id"],
        },
    }
    # The request took at least as long as the operation inside it.
    assert request["durationMs"] >= audit["durationMs"]
    signature = response.json()["value"]
    for secret in (token, b64url(digest), base64.b64encode(digest).decode(), signature):
        assert secret not in lines.text
    no_key_material_in_responses.scan(lines.text.encode(), "the log lines")


def test_a_console_playground_sign_logs_who_did_it_and_never_the_message(
    client: Client, personas: Personas, make_key: Any, lines: Lines
) -> None:
    version = make_key("console-signer", kty="EC", curve="P-256")
    client.force_login(personas.crypto_user)
    message = "transfer 1000 EUR to account 42"
    lines.clear()
    response = client.post(
        f"/vaults/{personas.vault.name}/keys/console-signer/versions/{version.version}/playground/",
        {
            "operation": "sign",
            "sign-algorithm": "ES256",
            "sign-output": "hex",
            "sign-message_kind": "message",
            "sign-message": message,
            "sign-message_as": "text",
        },
    )
    assert response.status_code == 200
    signature = re.search(r'<code id="op-sign-signature">([0-9a-f]+)</code>', response.text)
    assert signature is not None
    (audit,) = lines.of("AuditEvent")
    (request,) = lines.of("Request")
    person = {"claim": {"oid": str(personas.crypto_user.oid), "upn": "crypto"}}
    for line in (audit, request):
        assert (line["operationName"], line["resultType"], line["resultSignature"]) == (
            "KeySign",
            "Success",
            "OK",
        )
        assert line["identity"] == person and line["resourceId"] == personas.vault.resource_id
        assert line["operationVersion"] == ""
    assert audit["properties"]["face"] == "console"
    # The console's own correlation id ties the request to its entry.
    assert audit["correlationId"] and request["correlationId"] == audit["correlationId"]
    assert request["properties"]["requestUri"] == (
        f"http://testserver/vaults/{personas.vault.name}/keys/console-signer/versions/"
        f"{version.version}/playground/"
    )
    digest = hashlib.sha256(message.encode()).digest()
    for secret in (
        message,
        "transfer",
        signature.group(1),
        digest.hex(),
        b64url(digest),
        client.cookies["sessionid"].value,
    ):
        assert secret not in lines.text


def test_a_console_page_that_runs_no_operation_is_named_by_its_route(
    client: Client, personas: Personas, lines: Lines
) -> None:
    client.force_login(personas.reader)
    lines.clear()
    assert client.get(f"/vaults/{personas.vault.name}/keys/").status_code == 200
    (request,) = lines.all()
    assert request["operationName"] == "key-list"
    assert request["identity"] == {"claim": {"oid": str(personas.reader.oid), "upn": "reader"}}
    assert request["resourceId"] == "/subscriptions/00000000-0000-0000-0000-000000000000"


def test_a_forbidden_sign_is_logged_as_refused(
    client: Client, vault: Vault, system: User, make_key: Any, lines: Lines
) -> None:
    make_key("signer", kty="EC", curve="P-256")
    stranger = vault_services.application_create(actor=system, display_name="stranger")
    token = tokens.issue_access_token(stranger, audience=tokens.vault_resource()).access_token
    lines.clear()
    body = {"alg": "ES256", "value": b64url(hashlib.sha256(b"x").digest())}
    response = vault_call(client, vault, token, "/keys/signer//sign?api-version=7.6", body)
    assert response.status_code == 403
    audit, request = lines.all()
    for line in (audit, request):
        assert (line["operationName"], line["resultType"], line["resultSignature"]) == (
            "KeySign",
            "Forbidden",
            "Forbidden",
        )
        assert line["identity"] == {
            "claim": {"oid": str(stranger.user.oid), "appid": str(stranger.client_id)}
        }
    assert audit["properties"]["httpStatusCode"] == request["properties"]["httpStatusCode"] == 403
    assert audit["resultDescription"] == response.json()["error"]["message"]
    assert token not in lines.text and body["value"] not in lines.text


def test_a_request_without_a_token_is_logged_with_no_one_behind_it(
    client: Client, vault: Vault, lines: Lines
) -> None:
    response = vault_call(client, vault, None, "/keys/k//sign?api-version=7.6", {"alg": "ES256"})
    assert response.status_code == 401
    audit, request = lines.all()
    assert (audit["resultType"], audit["resultSignature"]) == ("Unauthorized", "Unauthorized")
    assert audit["identity"] == request["identity"] == {"claim": {"appid": "(anonymous)"}}


def test_the_failure_of_a_rolled_back_operation_is_logged_once(
    client: Client,
    system: User,
    vault: Vault,
    lines: Lines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer = vault_services.application_create(actor=system, display_name="officer")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(officer.client_id),
        role="Key Vault Crypto Officer",
        scope=scope_of(vault),
    )
    token = tokens.issue_access_token(officer, audience=tokens.vault_resource()).access_token

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the event could not be written")

    # Fails inside the write transaction, after the key and its version were inserted.
    monkeypatch.setattr(key_events, "emit_for_version", broken)
    lines.clear()
    response = vault_call(
        client, vault, token, "/keys/doomed/create?api-version=7.6", {"kty": "EC"}
    )
    assert response.status_code == 500
    assert not Key.objects.filter(name="doomed").exists()
    entry = ActivityEntry.objects.get(operation="KeyCreate", target__contains="doomed")
    assert entry.result == "Failure"
    audit, request = lines.all()
    assert (audit["category"], audit["operationName"], audit["resultType"]) == (
        "AuditEvent",
        "KeyCreate",
        "Failure",
    )
    assert audit["resultSignature"] == "InternalServerError"
    assert audit["properties"]["requestId"] == entry.request_id == response["x-ms-request-id"]
    assert "could not be written" not in lines.text
    assert (request["operationName"], request["properties"]["httpStatusCode"]) == ("KeyCreate", 500)


def test_an_entry_rolled_back_with_its_callers_transaction_is_never_logged(
    system: User, vault: Vault, lines: Lines
) -> None:
    with pytest.raises(Abandoned):
        create_in_an_abandoned_transaction(system, vault, "gone")
    assert lines.text == ""
    key_services.key_create(actor=system, vault_name=vault.name, name="kept", kty="EC")
    (audit,) = lines.all()
    assert audit["operationName"] == "KeyCreate" and audit["properties"]["id"].startswith(
        f"vaults/{vault.name}/keys/kept/"
    )
    assert audit["identity"]["claim"]["upn"] == system.username
    assert "requestUri" not in audit["properties"]


@pytest.mark.slow
def test_servers_write_lines_to_standard_output_and_commands_to_standard_error(
    tmp_path: Path,
) -> None:
    deployment = make_deployment(tmp_path)
    created = run_kv(deployment, "group", "create", "--name", "logged-rg", "--location", "uksouth")
    assert created.returncode == 0, created.stderr
    # Standard output stays the command's answer.
    assert json.loads(created.stdout)["name"] == "logged-rg"
    (line,) = [json.loads(text) for text in created.stderr.splitlines()]
    assert (line["category"], line["operationName"], line["properties"]["face"]) == (
        "AuditEvent",
        "ResourceGroupPut",
        "cli",
    )
    quiet = run_kv({**deployment, "KVCONSOLE_JSON_LOGS": "0"}, "group", "show", "-n", "logged-rg")
    assert quiet.returncode == 0 and quiet.stderr == ""
    output = tmp_path / "server-stdout"
    with output.open("wb") as stdout, serving(deployment, stdout=stdout) as base:
        assert requests.get(f"{base}/signin/", timeout=30).status_code == 200
    # granian's own messages, if any, are plain text beside the lines.
    served = [json.loads(text) for text in output.read_text().splitlines() if text.startswith("{")]
    assert [(line["category"], line["operationName"]) for line in served] == [("Request", "signin")]
