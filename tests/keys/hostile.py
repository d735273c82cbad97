"""What the hostile-input tests of the vault endpoint share: a vault with keys to aim at, an
application's token, and the check every answer must pass.

Requests go through the whole Django stack in the test's process and transaction (no server,
so thousands of them take seconds).
"""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts import tokens
from accounts.models import Application, User
from keys import services as key_services
from keys.models import Key, KeyRotationPolicy, KeyVersion
from tests.factories import VaultFactory
from vaults import services as vault_services
from vaults.models import ActivityEntry, ChangeCounter, Event, Notification, Vault

VAULT = "hostile-vault"
HOST = f"{VAULT}.vault.localhost:8443"
# A key of each type, and a deleted one.
KEY_NAMES = ("rsa-key", "ec-key", "oct-key", "gone-key")


def state() -> list[Any]:
    """Everything a refused request must leave as it was (the activity log aside)."""
    return [
        list(model.objects.order_by("pk").values_list())
        for model in (Key, KeyVersion, KeyRotationPolicy, Vault, Event, Notification, ChangeCounter)
    ]


def last_seq() -> int:
    return ActivityEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


@dataclass(frozen=True)
class Answer:
    method: str
    status: int
    # By lower-case name.
    headers: dict[str, str]
    content: bytes

    @classmethod
    def of(cls, method: str, status: int, headers: Mapping[str, Any], content: bytes) -> "Answer":
        """From a response's headers, each a value or (schemathesis) a list of one."""
        return cls(
            method,
            status,
            {
                name.lower(): value[0] if isinstance(value, list) else value
                for name, value in headers.items()
            },
            content,
        )


@contextmanager
def watched() -> Iterator[list[Answer]]:
    """Check the answer put in the list: Azure's, and, when refused, changing nothing but the
    one activity entry it writes."""
    before = state()
    since = last_seq()
    answers: list[Answer] = []
    yield answers
    (answer,) = answers
    check_answer(answer)
    entries = list(ActivityEntry.objects.filter(seq__gt=since).order_by("seq"))
    assert [entry.status_code for entry in entries] == [answer.status]
    if answer.status >= 400:
        assert entries[0].result != "Success"
        assert state() == before


def check_answer(answer: Answer) -> None:
    """A 2xx, or a 4xx with Azure's error body (401 with the challenge); never a 5xx, and
    always JSON."""
    assert answer.status < 500, answer.content[:2000]
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    # A HEAD's answer has the headers of a GET's, without its body.
    if answer.status == 204 or answer.method == "HEAD":
        assert answer.content == b""
        return
    body = json.loads(answer.content)
    if answer.status >= 400:
        error = body["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if answer.status == 401:
        assert answer.headers["www-authenticate"] == (
            f'Bearer authorization="{tokens.authority()}", resource="{tokens.vault_resource()}"'
        )


@contextmanager
def connection_kept() -> Iterator[None]:
    """Requests served in the test's transaction, which must outlive each of them (as
    Django's test client arranges)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass(frozen=True)
class Target:
    vault: Vault
    application: Application
    token: str
    # The current version of each key, by name.
    versions: dict[str, str]


def make_target(system: User) -> Target:
    """The vault with its keys, and a Crypto Officer application's token."""
    vault = VaultFactory.create(name=VAULT)
    application = vault_services.application_create(actor=system, display_name="hostile")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Crypto Officer",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{VAULT}",
    )
    versions = {
        name: key_services.key_create(actor=system, vault_name=VAULT, name=name, kty=kty).version
        for name, kty in zip(KEY_NAMES, ("RSA", "EC", "oct", "EC"), strict=True)
    }
    key_services.key_delete(actor=system, vault_name=VAULT, name="gone-key")
    token = tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token
    return Target(vault, application, token, versions)
