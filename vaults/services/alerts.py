"""Alert rules and their notifications: who hears about which events, and how.

A rule is what Azure calls an Event Grid subscription, on the deployment, a resource group,
a vault or one key: whoever may write Event Grid subscriptions at that scope (Owner) manages
it, and deployment principals manage them all. Rules are named across the deployment. A
rule that the caller may not read is reported as missing, as if it did not exist.

A webhook rule's signing secret is shown to whoever creates or re-keys the rule; later, only
deployment principals may read it again (vaults/webhooks.py derives it, nothing stores it).
"""

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError
from django.db.models import QuerySet

from accounts.models import User
from kvconsole import clock
from kvconsole.errors import BadParameter, Conflict, NotFound

from .. import activity, events, webhooks
from ..activity import operation
from ..models import AlertRule, Event, EventType, Notification, Operation, ResourceGroup, Vault
from ..permissions import (
    DEPLOYMENT,
    Action,
    MissingResourceGroup,
    Securable,
    authorize,
    is_deployment_principal,
    may,
)
from .access import Scope, _keys, _scope_object
from .resources import vault_lookup

# Event Grid's rule for subscription names.
RULE_NAME = re.compile(r"[A-Za-z0-9-]{3,64}")
MAX_RECIPIENTS = 20
MAX_TARGET_LENGTH = AlertRule._meta.get_field("target").max_length or 1000
MAX_ATTEMPTS_THRESHOLD = 10_000
MAX_WINDOW_SECONDS = 7 * 24 * 3600
# `kv alert test` raises this type for one rule; no rule subscribes to it.
SUBSCRIBABLE_EVENT_TYPES = tuple(kind for kind in EventType if kind is not EventType.ALERT_TEST)
_EVENT_TYPES_BY_NAME = {
    name.lower(): kind
    for kind in SUBSCRIBABLE_EVENT_TYPES
    for name in (kind.value, kind.value.rsplit(".", 1)[-1])
}


@dataclass(frozen=True)
class IssuedRule:
    """A rule just created or re-keyed, with its webhook signing secret (None for email)."""

    rule: AlertRule
    secret: str | None


def short_event_name(event_type: str) -> str:
    """KeyNearExpiry for Microsoft.KeyVault.KeyNearExpiry."""
    return event_type.rsplit(".", 1)[-1]


def rule_scope(rule: AlertRule) -> str:
    """The rule's scope as Azure writes scopes: `/` is the whole deployment."""
    if not rule.resource_group and not rule.vault_name:
        return "/"
    path = f"/resourceGroups/{rule.resource_group}" if rule.resource_group else ""
    if rule.vault_name:
        path += f"/providers/Microsoft.KeyVault/vaults/{rule.vault_name}"
    if rule.key_name:
        path += f"/keys/{rule.key_name}"
    return path


# --- rules -------------------------------------------------------------------------------------


@operation(Operation.ALERT_RULE_CREATE)
def alert_rule_create(
    *,
    actor: User,
    name: str,
    event_types: Iterable[str],
    channel: str,
    target: str,
    schema: str = AlertRule.Schema.EVENT_GRID,
    resource_group: str = "",
    vault_name: str = "",
    key_name: str = "",
    attempts: int | None = None,
    window_seconds: int | None = None,
    enabled: bool = True,
) -> IssuedRule:
    """Create a rule at a scope: the deployment (no names), a resource group, a vault, or a
    key in a vault."""
    activity.describe(target=f"alertRules/{name}")
    group, vault, key = _new_scope(actor, resource_group, vault_name, key_name)
    activity.describe(resource_group=group, vault=vault, target=f"alertRules/{name}")
    rule = AlertRule(
        name=_clean_name(name),
        enabled=_boolean(enabled, "enabled"),
        resource_group=group,
        vault_name=vault,
        key_name=key,
        event_types=clean_event_types(event_types),
        channel=_clean_channel(channel),
        schema=_clean_schema(schema),
        created_by=actor.username,
    )
    rule.target = clean_target(rule.channel, target)
    defaults = AlertRule()
    rule.attempts = _clean_attempts(defaults.attempts if attempts is None else attempts)
    rule.window_seconds = _clean_window(
        defaults.window_seconds if window_seconds is None else window_seconds
    )
    if AlertRule.objects.filter(name__iexact=rule.name).exists():
        raise Conflict(f"An alert rule named '{rule.name}' already exists.", code="AlertRuleExists")
    try:
        with activity.atomic():
            rule.save()
    except IntegrityError:
        raise Conflict(
            f"An alert rule named '{rule.name}' already exists.", code="AlertRuleExists"
        ) from None
    return IssuedRule(rule, _secret_of(rule))


@operation(Operation.ALERT_RULE_UPDATE)
def alert_rule_update(
    *,
    actor: User,
    name: str,
    enabled: bool | None = None,
    event_types: Iterable[str] | None = None,
    target: str | None = None,
    schema: str | None = None,
    attempts: int | None = None,
    window_seconds: int | None = None,
) -> AlertRule:
    """Change what a rule hears about and where it sends it; None leaves a field alone.
    Notifications already queued go where the rule sent them when they were made."""
    rule = _rule(actor, Action.ALERT_RULE_WRITE, name)
    changes: dict[str, Any] = {}
    if enabled is not None:
        changes["enabled"] = _boolean(enabled, "enabled")
    if event_types is not None:
        changes["event_types"] = clean_event_types(event_types)
    if target is not None:
        changes["target"] = clean_target(rule.channel, target)
    if schema is not None:
        changes["schema"] = _clean_schema(schema)
    if attempts is not None:
        changes["attempts"] = _clean_attempts(attempts)
    if window_seconds is not None:
        changes["window_seconds"] = _clean_window(window_seconds)
    for field, value in changes.items():
        setattr(rule, field, value)
    with activity.atomic():
        if changes:
            rule.save(update_fields=list(changes))
    return rule


@operation(Operation.ALERT_RULE_LIST)
def alert_rule_list(*, actor: User) -> list[AlertRule]:
    """The rules the actor may read, by name."""
    activity.describe(target="alertRules")
    return _readable_rules(actor)


@operation(Operation.ALERT_RULE_GET)
def alert_rule_get(*, actor: User, name: str) -> AlertRule:
    return _rule(actor, Action.ALERT_RULE_READ, name)


@operation(Operation.ALERT_RULE_DELETE)
def alert_rule_delete(*, actor: User, name: str) -> int:
    """Delete a rule. Its undelivered notifications are dead-lettered, since nothing may be
    sent in the name of a rule that is gone; returns how many. Delivered ones stay."""
    rule = _rule(actor, Action.ALERT_RULE_DELETE, name)
    with activity.atomic():
        given_up = Notification.objects.filter(
            rule=rule, status=Notification.Status.PENDING
        ).update(
            status=Notification.Status.DEAD,
            last_error="The alert rule was deleted before this was delivered.",
        )
        rule.delete()
    return given_up


@operation(Operation.ALERT_RULE_SECRET_GET)
def alert_rule_secret(*, actor: User, name: str) -> str:
    """A webhook rule's signing secret, again: deployment principals only."""
    rule = _rule(actor, Action.ALERT_RULE_READ, name)
    authorize(actor, Action.ALERT_RULE_SECRET_READ, DEPLOYMENT)
    secret = _secret_of(rule)
    if secret is None:
        raise BadParameter(
            f"The alert rule '{rule.name}' sends email; only webhooks have a signing secret."
        )
    return secret


@operation(Operation.ALERT_RULE_REKEY)
def alert_rule_rekey(*, actor: User, name: str) -> IssuedRule:
    """Give a webhook rule a new signing secret; the old one signs nothing from now on."""
    rule = _rule(actor, Action.ALERT_RULE_WRITE, name)
    if rule.channel != AlertRule.Channel.WEBHOOK:
        raise BadParameter(
            f"The alert rule '{rule.name}' sends email; only webhooks have a signing secret."
        )
    rule.signing_salt = uuid.uuid4()
    with activity.atomic():
        rule.save(update_fields=["signing_salt"])
    return IssuedRule(rule, _secret_of(rule))


@operation(Operation.ALERT_RULE_TEST)
def alert_rule_test(*, actor: User, name: str) -> Event:
    """Queue a test event for this rule alone (enabled or not), delivered like any other."""
    rule = _rule(actor, Action.ALERT_RULE_WRITE, name)
    vault = (
        Vault.objects.select_related("resource_group")
        .filter(name=rule.vault_name.lower(), deleted_at=None)
        .first()
        if rule.vault_name
        else None
    )
    with activity.atomic():
        event = events.emit(
            EventType.ALERT_TEST,
            vault=vault,
            subject=rule.name,
            data={
                "RuleName": rule.name,
                "Scope": rule_scope(rule),
                "Message": "A test of this alert rule; nothing happened to any key or vault.",
                "RequestedBy": actor.username,
            },
            key_name=rule.key_name,
            only_rule=rule,
        )
    assert event is not None
    return event


# --- notifications -----------------------------------------------------------------------------


@operation(Operation.NOTIFICATION_LIST)
def notification_list(
    *, actor: User, status: str | None = None, rule_name: str | None = None
) -> QuerySet[Notification]:
    """Notifications of the rules the actor may read, newest first; those whose rule was
    deleted only for deployment principals."""
    activity.describe(target="notifications")
    found = Notification.objects.select_related("event", "rule").order_by("-id")
    if status is not None:
        if status not in Notification.Status.values:
            raise BadParameter(
                f"Unknown status '{status}'; use one of {', '.join(Notification.Status.values)}."
            )
        found = found.filter(status=status)
    if rule_name is not None:
        found = found.filter(rule=_rule(actor, Action.ALERT_RULE_READ, rule_name))
    elif not is_deployment_principal(actor):
        found = found.filter(rule__in=_readable_rules(actor))
    return found


@operation(Operation.NOTIFICATION_REQUEUE)
def notification_requeue(*, actor: User, uids: Iterable[str] = (), all_dead: bool = False) -> int:
    """Put dead-lettered notifications back in the queue, due now with a fresh count of
    attempts; returns how many. `all_dead` (deployment principals) takes every one."""
    activity.describe(target="notifications")
    wanted = list(uids)
    if all_dead == bool(wanted):
        raise BadParameter("Name the notifications to requeue, or ask for all dead-lettered.")
    if all_dead:
        authorize(actor, Action.ALERT_RULE_WRITE, DEPLOYMENT)
        chosen = Notification.objects.filter(status=Notification.Status.DEAD, rule__isnull=False)
    else:
        rows = [_dead_notification(actor, uid) for uid in wanted]
        if len(rows) > 1:
            activity.describe(resource_group="", vault="", target="notifications")
        chosen = Notification.objects.filter(pk__in=[row.pk for row in rows])
    with activity.atomic():
        return chosen.filter(status=Notification.Status.DEAD).update(
            status=Notification.Status.PENDING, attempts=0, next_attempt_at=clock.now()
        )


def _dead_notification(actor: User, uid: str) -> Notification:
    try:
        parsed = uuid.UUID(str(uid))
    except ValueError:
        raise BadParameter(f"'{uid}' is not a notification id (a UUID).") from None
    row = Notification.objects.select_related("rule", "event").filter(uid=parsed).first()
    scope = _scope_of(row.rule) if row is not None and row.rule is not None else DEPLOYMENT
    if row is None or not may(actor, Action.ALERT_RULE_READ, scope):
        raise NotFound(f"Notification '{uid}' was not found.", code="NotificationNotFound")
    activity.describe(
        resource_group=row.event.resource_group,
        vault=row.event.vault_name,
        target=f"notifications/{row.uid}",
    )
    authorize(actor, Action.ALERT_RULE_WRITE, scope)
    if row.rule is None:
        raise Conflict(
            f"Notification '{uid}' belonged to an alert rule that was deleted; it cannot be sent.",
            code="AlertRuleDeleted",
        )
    if row.status != Notification.Status.DEAD:
        raise Conflict(
            f"Notification '{uid}' is {row.get_status_display().lower()}, not dead-lettered.",
            code="NotificationNotDead",
        )
    return row


# --- validation --------------------------------------------------------------------------------


def clean_event_types(names: Iterable[str]) -> list[str]:
    """Event Grid's full names (Microsoft.KeyVault.KeyNearExpiry) or short ones
    (KeyNearExpiry), in any case; returns full names without repeats."""
    if isinstance(names, str):
        names = [names]
    chosen: list[str] = []
    for raw in names:
        name = str(raw).strip()
        kind = _EVENT_TYPES_BY_NAME.get(name.lower())
        if kind is None:
            known = ", ".join(short_event_name(kind) for kind in SUBSCRIBABLE_EVENT_TYPES)
            raise BadParameter(
                f"Unknown event type '{name}'. Known types: {known} (or their full Event Grid "
                "names, such as Microsoft.KeyVault.KeyNearExpiry).",
                code="InvalidEventType",
            )
        if kind.value not in chosen:
            chosen.append(kind.value)
    if not chosen:
        raise BadParameter("Name at least one event type.", code="InvalidEventType")
    return chosen


def clean_target(channel: str, target: str) -> str:
    """Email: comma-separated addresses. Webhook: an HTTPS URL without credentials."""
    text = str(target).strip()
    if channel == AlertRule.Channel.EMAIL:
        return _clean_recipients(text)
    return clean_webhook_url(text)


def clean_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise BadParameter(
            f"The webhook URL '{url}' is not HTTPS. Webhooks are sent over HTTPS only, so that "
            "events and their signatures cannot be read or replayed on the way.",
            code="InvalidWebhookUrl",
        )
    try:
        URLValidator(schemes=["https"])(url)
    except ValidationError:
        raise BadParameter(
            f"'{url}' is not a valid URL, such as https://alerts.example.com/kvconsole.",
            code="InvalidWebhookUrl",
        ) from None
    if parts.username or parts.password:
        raise BadParameter(
            "A webhook URL may not hold a user name or password: it is stored and shown as it "
            "is. Receivers check the signature instead.",
            code="InvalidWebhookUrl",
        )
    if len(url) > MAX_TARGET_LENGTH:
        raise BadParameter(
            f"The webhook URL is longer than {MAX_TARGET_LENGTH} characters.",
            code="InvalidWebhookUrl",
        )
    return url


def _clean_recipients(text: str) -> str:
    addresses: list[str] = []
    for part in text.split(","):
        address = part.strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise BadParameter(
                f"'{address}' is not an email address.", code="InvalidEmailAddress"
            ) from None
        if address.lower() not in (known.lower() for known in addresses):
            addresses.append(address)
    if not addresses:
        raise BadParameter("Give at least one email address.", code="InvalidEmailAddress")
    if len(addresses) > MAX_RECIPIENTS:
        raise BadParameter(
            f"At most {MAX_RECIPIENTS} recipients per rule.", code="InvalidEmailAddress"
        )
    joined = ",".join(addresses)
    if len(joined) > MAX_TARGET_LENGTH:
        raise BadParameter(
            f"The recipients are longer than {MAX_TARGET_LENGTH} characters together.",
            code="InvalidEmailAddress",
        )
    return joined


def _clean_name(name: str) -> str:
    if not isinstance(name, str) or not RULE_NAME.fullmatch(name):
        raise BadParameter(
            f"The alert rule name '{name}' is not valid: use 3 to 64 letters, digits and hyphens.",
            code="InvalidAlertRuleName",
        )
    return name


def _clean_channel(channel: str) -> str:
    if channel not in AlertRule.Channel.values:
        raise BadParameter(f"Unknown channel '{channel}'; use email or webhook.")
    return channel


def _clean_schema(schema: str) -> str:
    lowered = str(schema).lower()
    if lowered not in AlertRule.Schema.values:
        raise BadParameter(f"Unknown schema '{schema}'; use eventgrid or cloudevents.")
    return lowered


def _clean_attempts(value: int) -> int:
    if not _whole(value) or not 1 <= value <= MAX_ATTEMPTS_THRESHOLD:
        raise BadParameter(f"attempts must be a whole number from 1 to {MAX_ATTEMPTS_THRESHOLD}.")
    return value


def _clean_window(value: int) -> int:
    if not _whole(value) or not 1 <= value <= MAX_WINDOW_SECONDS:
        days = MAX_WINDOW_SECONDS // 86400
        raise BadParameter(f"The window must be from 1 second to {days} days.")
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadParameter(f"{name} must be true or false.")
    return value


# --- scopes and rules --------------------------------------------------------------------------


def _new_scope(
    actor: User, resource_group: str, vault_name: str, key_name: str
) -> tuple[str, str, str]:
    """The canonical (group, vault, key) names of a new rule's scope, once the actor may
    write Event Grid subscriptions there."""
    action = Action.ALERT_RULE_WRITE
    if key_name and not vault_name:
        raise BadParameter("A key scope names its vault too (--key VAULT/KEY).")
    if vault_name:
        vault = vault_lookup(vault_name, actor=actor, action=action, as_target=False)
        if resource_group and resource_group.lower() != vault.resource_group.name.lower():
            authorize(actor, action, vault)
            raise BadParameter(
                f"The vault '{vault.name}' is in resource group '{vault.resource_group.name}', "
                f"not '{resource_group}'.",
                code="InvalidScope",
            )
        scope = Scope(vault.resource_group.name, vault.name, key_name or None)
    elif resource_group:
        scope = Scope(resource_group)
    else:
        authorize(actor, action, DEPLOYMENT)
        return "", "", ""
    obj = cast(Securable, _scope_object(actor, action, scope))
    authorize(actor, action, obj)
    names: dict[str, str] = {"group": "", "vault": "", "key": ""}
    for item in obj.permission_chain():
        if isinstance(item, ResourceGroup):
            names["group"] = item.name
        elif isinstance(item, Vault):
            names["vault"] = item.name
        else:
            names["key"] = str(getattr(item, "name", ""))
    return names["group"], names["vault"], names["key"]


def _scope_of(rule: AlertRule) -> Securable:
    """What a rule's scope names now: its key, vault (soft-deleted too) or group, or the
    nearest of them that still exists; a scope that is gone only deployment principals hold."""
    if rule.vault_name:
        vaults = Vault.objects.select_related("resource_group").filter(name=rule.vault_name.lower())
        if rule.resource_group:
            # A vault of the same name made later in another group is not the rule's.
            vaults = vaults.filter(resource_group__name__iexact=rule.resource_group)
        vault = vaults.first()
        if vault is not None:
            if rule.key_name:
                key = _keys().filter(vault=vault, name__iexact=rule.key_name).first()
                if key is not None:
                    return cast(Securable, key)
            return vault
    if rule.resource_group:
        group = ResourceGroup.objects.filter(name__iexact=rule.resource_group).first()
        return group if group is not None else MissingResourceGroup(rule.resource_group)
    return DEPLOYMENT


def _rule(actor: User, action: Action, name: str) -> AlertRule:
    """The rule named `name` if the actor may read it (else NotFound), once it may perform
    `action` on it."""
    activity.describe(target=f"alertRules/{name}")
    rule = AlertRule.objects.filter(name__iexact=str(name)).first()
    scope = _scope_of(rule) if rule is not None else DEPLOYMENT
    if rule is None or not may(actor, Action.ALERT_RULE_READ, scope):
        raise NotFound(f"Alert rule '{name}' was not found.", code="AlertRuleNotFound")
    activity.describe(
        resource_group=rule.resource_group,
        vault=rule.vault_name,
        target=f"alertRules/{rule.name}",
    )
    authorize(actor, action, scope)
    return rule


def _readable_rules(actor: User) -> list[AlertRule]:
    rules = list(AlertRule.objects.order_by("name"))
    if is_deployment_principal(actor):
        return rules
    return [rule for rule in rules if may(actor, Action.ALERT_RULE_READ, _scope_of(rule))]


def _secret_of(rule: AlertRule) -> str | None:
    if rule.channel != AlertRule.Channel.WEBHOOK:
        return None
    return webhooks.rule_secret(rule)
