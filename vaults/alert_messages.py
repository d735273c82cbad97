"""What alerts say: a webhook's body in the rule's schema, and an email's text."""

import json
from datetime import UTC, datetime
from typing import Any

from django.core.mail import EmailMessage

from . import events, webhooks
from .models import AlertRule, Event, EventType


def webhook_body(event: Event, schema: str) -> tuple[bytes, str]:
    """The body and content type of a webhook delivery: Event Grid posts an array of
    events; CloudEvents' structured mode posts the one event."""
    if schema == AlertRule.Schema.CLOUD_EVENTS:
        return _json(events.cloud_event(event)), "application/cloudevents+json; charset=utf-8"
    return _json([events.event_grid(event)]), "application/json; charset=utf-8"


def email_message(
    event: Event, *, schema: str, recipients: list[str], delivery_id: str, rule_name: str
) -> EmailMessage:
    """A plain-text message naming the event, the object, the vault and the time, with
    the event attached in the rule's schema."""
    data = event.data if isinstance(event.data, dict) else {}
    kind = _label(event.event_type)
    name = data.get("ObjectName") or event.subject
    where = f"vault {event.vault_name}" if event.vault_name else "the deployment"
    described = f"{data.get('ObjectType', 'Object')} {name}"
    if data.get("Version"):
        described += f", version {data['Version']}"
    vault = event.vault_name or "(none: an event of the deployment)"
    if event.resource_group:
        vault += f" in resource group {event.resource_group}"
    lines = [
        f"{kind} ({event.event_type})",
        "",
        f"Object:   {described}",
        f"Vault:    {vault}",
        f"Time:     {_utc(event.time)}",
    ]
    if data.get("EXP") is not None:
        lines.append(f"Expires:  {_epoch_text(data['EXP'])}")
    lines += [
        f"Event id: {event.uid}",
        f"Rule:     {rule_name}",
        "",
        "The event is attached as event.json.",
        "",
    ]
    body, _ = webhook_body(event, schema)
    message = EmailMessage(
        f"[kvconsole] {kind}: {name} in {where}",
        "\n".join(lines),
        to=[address for address in recipients if address],
        headers={
            # The same for every attempt, so a retried message can be told for a duplicate.
            "Message-ID": f"<{delivery_id}@kvconsole>",
            webhooks.DELIVERY_HEADER: delivery_id,
        },
    )
    message.attach("event.json", body, "application/json")
    return message


def _label(event_type: str) -> str:
    try:
        return str(EventType(event_type).label)
    except ValueError:
        return event_type


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _epoch_text(seconds: Any) -> str:
    try:
        return _utc(datetime.fromtimestamp(int(seconds), tz=UTC))
    except (TypeError, ValueError, OverflowError):
        return str(seconds)
