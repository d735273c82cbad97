"""`kv alert ...` (alert rules, tests, requeueing) and `kv deliver` (the delivery worker)."""

import argparse
import re
from datetime import UTC, datetime
from typing import Any

from kvconsole.cli import Invocation, boolean, group, leaf
from kvconsole.errors import BadParameter

from . import delivery, services
from .models import AlertRule, Event, Notification
from .services.alerts import SUBSCRIBABLE_EVENT_TYPES

_RULE_COLUMNS = ("name", "scope", "channel", "destination", "eventTypes", "enabled")
_NOTIFICATION_COLUMNS = (
    "id",
    "rule",
    "eventType",
    "subject",
    "status",
    "attempts",
    "nextAttemptAt",
    "lastError",
)
_WINDOW = re.compile(r"(?P<number>\d+)\s*(?P<unit>[smhd]?)", re.IGNORECASE)
_SECONDS_PER = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands: Any) -> None:
    deliver = leaf(
        commands,
        "deliver",
        _deliver,
        "Deliver the alert notifications that are due (once, or with --loop until stopped).",
    )
    deliver.add_argument(
        "--loop",
        action="store_true",
        help="Keep delivering as notifications fall due, until SIGTERM or SIGINT.",
    )
    alerts = group(commands, "alert", "Alert rules and the notifications they send.")
    _register_rules(group(alerts, "rule", "Manage alert rules."))
    test = leaf(alerts, "test", _test, "Send a test event to one rule's email or webhook.")
    test.add_argument("--rule", required=True, help="The rule's name.")
    requeue = leaf(alerts, "requeue", _requeue, "Requeue dead-lettered notifications.")
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id", dest="ids", action="append", metavar="UID", help="A notification's id (repeat)."
    )
    which.add_argument("--all-dead", action="store_true", help="Every dead-lettered notification.")
    notifications = group(alerts, "notification", "Notifications waiting, sent or given up.")
    listing = leaf(
        notifications,
        "list",
        _notification_list,
        "List notifications, newest first.",
        columns=_NOTIFICATION_COLUMNS,
    )
    listing.add_argument("--status", choices=Notification.Status.values)
    listing.add_argument("--rule", help="Only this rule's.")
    listing.add_argument("--top", type=int, default=100, help="At most this many.")


def _register_rules(commands: Any) -> None:
    create = leaf(commands, "create", _rule_create, "Create an alert rule.")
    _rule_name(create)
    create.add_argument(
        "--events",
        required=True,
        help="Comma-separated event types, short (KeyNearExpiry) or full "
        "(Microsoft.KeyVault.KeyNearExpiry): "
        + ", ".join(services.short_event_name(kind) for kind in SUBSCRIBABLE_EVENT_TYPES),
    )
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--vault", help="Events of this vault (default: the whole deployment).")
    scope.add_argument("--resource-group", "-g", help="Events of this group's vaults.")
    scope.add_argument("--key", metavar="VAULT/KEY", help="Events of one key.")
    _destination(create, required=True)
    create.add_argument(
        "--schema",
        choices=AlertRule.Schema.values,
        default=AlertRule.Schema.EVENT_GRID,
        help="Webhook body: Event Grid's schema (default) or CloudEvents 1.0.",
    )
    _threshold(create)
    create.add_argument("--enabled", type=boolean, default=True)

    update = leaf(commands, "update", _rule_update, "Change an alert rule.")
    _rule_name(update)
    update.add_argument("--events", help="Comma-separated event types (replaces the list).")
    _destination(update, required=False)
    update.add_argument("--schema", choices=AlertRule.Schema.values)
    _threshold(update)
    update.add_argument("--enabled", type=boolean)

    leaf(commands, "list", _rule_list, "List alert rules.", columns=_RULE_COLUMNS)
    show = leaf(commands, "show", _rule_show, "Show an alert rule.")
    _rule_name(show)
    delete = leaf(
        commands,
        "delete",
        _rule_delete,
        "Delete an alert rule; its undelivered notifications are dead-lettered.",
    )
    _rule_name(delete)
    secret = leaf(
        commands,
        "secret",
        _rule_secret,
        "Print a webhook rule's signing secret (deployment principals only).",
    )
    _rule_name(secret)
    rekey = leaf(
        commands,
        "rekey",
        _rule_rekey,
        "Give a webhook rule a new signing secret and print it.",
    )
    _rule_name(rekey)


def _rule_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", "-n", required=True, help="The rule's name.")


def _destination(parser: argparse.ArgumentParser, *, required: bool) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--email", metavar="ADDRESSES", help="Comma-separated email addresses.")
    where.add_argument("--webhook", metavar="URL", help="An https:// URL to POST events to.")


def _threshold(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--attempts",
        type=int,
        help="UnauthorizedAccessAttempts: refusals of one principal on one vault that raise "
        "the event (default 10).",
    )
    parser.add_argument(
        "--window",
        help="UnauthorizedAccessAttempts: within this long: 300, 90s, 5m, 1h (default 5m).",
    )


# --- handlers ------------------------------------------------------------------------------


def _deliver(run: Invocation) -> Any:
    if not run.options.loop:
        return delivery.notifications_deliver(actor=run.actor).as_dict()
    with delivery.stop_on_signals() as stop:
        return delivery.notifications_deliver(actor=run.actor, stop=stop).as_dict()


def _rule_create(run: Invocation) -> Any:
    options = run.options
    vault, key = options.vault or "", ""
    if options.key:
        vault, slash, key = options.key.partition("/")
        if not slash or not vault or not key or "/" in key:
            raise BadParameter(f"--key takes VAULT/KEY, not '{options.key}'.", code="InvalidScope")
    issued = services.alert_rule_create(
        actor=run.actor,
        name=options.name,
        event_types=_event_list(options.events),
        channel=AlertRule.Channel.EMAIL if options.email else AlertRule.Channel.WEBHOOK,
        target=options.email or options.webhook,
        schema=options.schema,
        resource_group=options.resource_group or "",
        vault_name=vault,
        key_name=key,
        attempts=options.attempts,
        window_seconds=_window(options.window),
        enabled=options.enabled,
    )
    return _issued(issued)


def _rule_update(run: Invocation) -> Any:
    options = run.options
    rule = services.alert_rule_get(actor=run.actor, name=options.name)
    wanted = AlertRule.Channel.EMAIL if options.email else AlertRule.Channel.WEBHOOK
    if (options.email or options.webhook) and wanted != rule.channel:
        raise BadParameter(
            f"The rule '{rule.name}' sends {rule.get_channel_display().lower()}; its channel "
            "cannot change. Create another rule instead."
        )
    updated = services.alert_rule_update(
        actor=run.actor,
        name=options.name,
        enabled=options.enabled,
        event_types=_event_list(options.events) if options.events is not None else None,
        target=options.email or options.webhook,
        schema=options.schema,
        attempts=options.attempts,
        window_seconds=_window(options.window),
    )
    return _rule(updated)


def _rule_list(run: Invocation) -> Any:
    rules = [_rule(rule) for rule in services.alert_rule_list(actor=run.actor)]
    if run.options.output == "table":
        for shaped in rules:
            shaped["eventTypes"] = [
                services.short_event_name(kind) for kind in shaped["eventTypes"]
            ]
    return rules


def _rule_show(run: Invocation) -> Any:
    return _rule(services.alert_rule_get(actor=run.actor, name=run.options.name))


def _rule_delete(run: Invocation) -> Any:
    services.alert_rule_delete(actor=run.actor, name=run.options.name)


def _rule_secret(run: Invocation) -> Any:
    secret = services.alert_rule_secret(actor=run.actor, name=run.options.name)
    return {"name": run.options.name, "signingSecret": secret}


def _rule_rekey(run: Invocation) -> Any:
    return _issued(services.alert_rule_rekey(actor=run.actor, name=run.options.name))


def _test(run: Invocation) -> Any:
    event = services.alert_rule_test(actor=run.actor, name=run.options.rule)
    return {**_event(event), "rule": run.options.rule}


def _requeue(run: Invocation) -> Any:
    count = services.notification_requeue(
        actor=run.actor, uids=run.options.ids or (), all_dead=run.options.all_dead
    )
    return {"requeued": count}


def _notification_list(run: Invocation) -> Any:
    options = run.options
    found = services.notification_list(
        actor=run.actor, status=options.status, rule_name=options.rule
    )[: max(options.top, 0)]
    return [_notification(row) for row in found]


# --- parsing and shapes --------------------------------------------------------------------


def _event_list(text: str) -> list[str]:
    return [part for part in (piece.strip() for piece in text.split(",")) if part]


def _window(text: str | None) -> int | None:
    """Seconds from 300, 90s, 5m, 1h or 1d."""
    if text is None:
        return None
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise BadParameter(f"--window takes a length such as 300, 90s, 5m or 1h, not '{text}'.")
    return int(match["number"]) * _SECONDS_PER[match["unit"].lower()]


def _issued(issued: services.IssuedRule) -> dict[str, Any]:
    shaped = _rule(issued.rule)
    if issued.secret is not None:
        # Shown now; afterwards only deployment principals can read it (kv alert rule secret).
        shaped["signingSecret"] = issued.secret
    return shaped


def _rule(rule: AlertRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "id": str(rule.uid),
        "enabled": rule.enabled,
        "scope": services.rule_scope(rule),
        "eventTypes": list(rule.event_types),
        "channel": rule.channel,
        "destination": rule.target,
        "schema": rule.schema,
        "unauthorizedAccessAttempts": {
            "attempts": rule.attempts,
            "windowSeconds": rule.window_seconds,
        },
        "createdAt": _time(rule.created_at),
        "createdBy": rule.created_by,
    }


def _event(event: Event) -> dict[str, Any]:
    return {
        "eventId": str(event.uid),
        "eventType": event.event_type,
        "subject": event.subject,
        "eventTime": _time(event.time),
    }


def _notification(row: Notification) -> dict[str, Any]:
    return {
        "id": str(row.uid),
        "rule": row.rule.name if row.rule else None,
        **_event(row.event),
        "channel": row.channel,
        "destination": row.target,
        "status": row.status,
        "attempts": row.attempts,
        "nextAttemptAt": _time(row.next_attempt_at),
        "lastError": row.last_error,
        "deliveredAt": _time(row.delivered_at),
        "createdAt": _time(row.created_at),
    }


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
