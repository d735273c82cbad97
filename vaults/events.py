"""Events and their notifications: written with the change that caused them, delivered later.

`emit()` runs inside the transaction of the change (a service's `activity.atomic()` block,
or one the caller opens): the event and a pending notification for each matching alert rule
commit with the change or not at all, so no notification is lost and none is sent for a
change that rolled back. A worker delivers the notifications afterwards (vaults/delivery.py).

Events and their envelopes follow Azure Event Grid's Key Vault events: the event types,
`topic` (the vault's resource id), `subject` (the object's name) and PascalCase `data`; a
webhook may ask for CloudEvents 1.0 instead.
"""

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from kvconsole import clock

from .models import AlertRule, Event, EventType, Notification, Vault


def emit(
    event_type: EventType,
    *,
    vault: Vault | None,
    subject: str,
    data: dict[str, Any],
    key_name: str = "",
    once: str | None = None,
    only_rule: AlertRule | None = None,
) -> Event | None:
    """Record an event and queue a notification for each enabled rule that covers it.

    With `once`, an event with the same key recorded before (by this or any process) makes
    this one nothing: None is returned. With `only_rule`, that rule alone is notified,
    whatever its scope and types (a test of the rule's channel).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("events.emit() must run in the transaction of the change it reports")
    if once is not None and Event.objects.filter(once=once).exists():
        return None
    now = clock.now()
    event = Event(
        event_type=event_type,
        topic=vault.resource_id if vault else deployment_topic(),
        subject=subject,
        time=now,
        data=data,
        resource_group=vault.resource_group.name if vault else "",
        vault_name=vault.name if vault else "",
        key_name=key_name,
        once=once,
    )
    if once is None:
        event.save()
    else:
        try:
            # A savepoint: another process recording the same once-only event must not take
            # the caller's change down with it.
            with transaction.atomic():
                event.save()
        except IntegrityError:
            if Event.objects.filter(once=once).exists():
                return None
            raise
    Notification.objects.bulk_create(
        Notification(
            event=event,
            rule=rule,
            channel=rule.channel,
            target=rule.target,
            schema=rule.schema,
            next_attempt_at=now,
        )
        for rule in ([only_rule] if only_rule is not None else matching_rules(event))
    )
    return event


def matching_rules(event: Event) -> list[AlertRule]:
    """The enabled rules whose scope holds the event and whose types include it."""
    rules = AlertRule.objects.filter(enabled=True).filter(
        _within("resource_group", event.resource_group),
        _within("vault_name", event.vault_name),
        _within("key_name", event.key_name),
    )
    # Rules are few; their type lists are matched here rather than with a JSON lookup
    # that not every database has.
    return [rule for rule in rules if event.event_type in rule.event_types]


def _within(field: str, value: str) -> Q:
    """A rule's scope field holds the event when it is empty (wider) or names the same."""
    return Q(**{field: ""}) | Q(**{f"{field}__iexact": value}) if value else Q(**{field: ""})


def vault_data(vault: Vault) -> dict[str, Any]:
    """Event Grid's `data` for an event about a vault itself (VaultAccessPolicyChanged): the
    vault is the object, and it has no version, nbf or exp."""
    return {
        "Id": vault.uri,
        "VaultName": vault.name,
        "ObjectType": "Vault",
        "ObjectName": vault.name,
        "Version": None,
        "NBF": None,
        "EXP": None,
    }


def deployment_topic() -> str:
    """The topic of events about the deployment rather than a vault (sign-in lockouts)."""
    return f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}"


# --- envelopes ---------------------------------------------------------------------------------


def event_grid(event: Event) -> dict[str, Any]:
    """The event in the Event Grid schema, as Azure delivers it."""
    return {
        "id": str(event.uid),
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": _timestamp(event.time),
        "data": event.data,
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def cloud_event(event: Event) -> dict[str, Any]:
    """The event in the CloudEvents 1.0 schema (JSON format)."""
    return {
        "specversion": "1.0",
        "id": str(event.uid),
        "source": event.topic,
        "subject": event.subject,
        "type": event.event_type,
        "time": _timestamp(event.time),
        "datacontenttype": "application/json",
        "data": event.data,
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
