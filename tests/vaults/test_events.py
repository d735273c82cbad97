"""Events and the outbox: written with the change that caused them, matched to alert rules
by scope and type, in Azure Event Grid's shapes."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction

from accounts.models import User
from keys import services as key_services
from keys.models import KeyVersion
from tests.factories import VaultFactory
from vaults import events
from vaults.models import AlertRule, Event, EventType, Notification, Vault

pytestmark = pytest.mark.django_db

NEW_VERSION = EventType.KEY_NEW_VERSION_CREATED


def rule(name: str, *, types: list[str] | None = None, **scope: Any) -> AlertRule:
    return AlertRule.objects.create(
        name=name,
        event_types=types or [NEW_VERSION],
        channel=AlertRule.Channel.WEBHOOK,
        target=f"https://hooks.example/{name}",
        **scope,
    )


def test_a_new_key_raises_key_new_version_created_with_event_grids_data(
    make_key: Any, vault: Vault
) -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    version = make_key("payments", kty="EC", expires=expires)
    event = Event.objects.get(event_type=NEW_VERSION)
    assert event.topic == vault.resource_id and event.subject == "payments"
    assert event.data == {
        "Id": f"{vault.uri}keys/payments/{version.version}",
        "VaultName": vault.name,
        "ObjectType": "Key",
        "ObjectName": "payments",
        "Version": version.version,
        "NBF": None,
        "EXP": int(expires.timestamp()),
    }


def test_rotation_import_and_revert_raise_it_too_but_a_restore_does_not(
    system: User, vault: Vault, make_key: Any
) -> None:
    first = make_key("k", kty="EC")
    key_services.key_rotate(actor=system, vault_name=vault.name, name="k")
    key_services.key_revert(actor=system, vault_name=vault.name, name="k", version=first.version)
    assert Event.objects.filter(event_type=NEW_VERSION).count() == 3
    blob = key_services.key_backup(actor=system, vault_name=vault.name, name="k")
    other = VaultFactory.create(name="elsewhere")
    key_services.key_restore(actor=system, vault_name=other.name, blob=blob)
    assert Event.objects.filter(event_type=NEW_VERSION).count() == 3


def test_each_matching_rule_gets_one_pending_notification(make_key: Any, vault: Vault) -> None:
    everywhere = rule("everywhere")
    this_vault = rule("this-vault", vault_name=vault.name.upper())
    this_group = rule("this-group", resource_group=vault.resource_group.name)
    this_key = rule("this-key", vault_name=vault.name, key_name="k")
    rule("other-vault", vault_name="somewhere-else")
    rule("other-key", vault_name=vault.name, key_name="not-k")
    rule("other-type", types=[EventType.KEY_EXPIRED])
    rule("disabled", enabled=False)
    make_key("k", kty="EC")
    notified = Notification.objects.filter(status=Notification.Status.PENDING)
    assert {n.rule for n in notified} == {everywhere, this_vault, this_group, this_key}
    assert all(n.rule and n.target == n.rule.target and n.attempts == 0 for n in notified)


def test_a_change_that_rolls_back_leaves_no_event_and_no_notification(
    make_key: Any, vault: Vault
) -> None:
    rule("everywhere")
    with transaction.atomic():
        make_key("never", kty="EC")
        transaction.set_rollback(True)
    assert not Event.objects.exists() and not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_is_written_only_inside_a_transaction(vault: Vault) -> None:
    with pytest.raises(RuntimeError):
        events.emit(NEW_VERSION, vault=vault, subject="k", data={})


def test_a_once_only_event_happens_once(vault: Vault) -> None:
    with transaction.atomic():
        first = events.emit(
            EventType.KEY_NEAR_EXPIRY, vault=vault, subject="k", data={}, once="near:k:v:30"
        )
        second = events.emit(
            EventType.KEY_NEAR_EXPIRY, vault=vault, subject="k", data={}, once="near:k:v:30"
        )
    assert first is not None and second is None
    assert Event.objects.count() == 1


def test_the_envelopes_are_event_grids_and_cloudevents(make_key: Any, vault: Vault) -> None:
    version: KeyVersion = make_key("k", kty="EC")
    event = Event.objects.get()
    grid = events.event_grid(event)
    assert grid == {
        "id": str(event.uid),
        "topic": vault.resource_id,
        "subject": "k",
        "eventType": "Microsoft.KeyVault.KeyNewVersionCreated",
        "eventTime": grid["eventTime"],
        "data": event.data,
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    assert grid["eventTime"].endswith("Z")
    cloud = events.cloud_event(event)
    assert cloud["specversion"] == "1.0" and cloud["source"] == vault.resource_id
    assert cloud["type"] == grid["eventType"] and cloud["data"]["Version"] == version.version
