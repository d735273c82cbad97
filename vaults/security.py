"""The deployment's two security events, which Azure Event Grid does not have: a principal
refused again and again on one vault (UnauthorizedAccessAttempts), and a console sign-in
locked out after too many failures (SignInLockout).

Both are raised after a refusal has been recorded, when the refused call's own transaction
has rolled back, so each is written in a transaction of its own.
"""

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet, Subquery
from django.utils import timezone

from accounts.models import User

from . import events
from .models import ActivityEntry, AlertRule, Event, EventType, Result, Vault

UNAUTHORIZED = EventType.UNAUTHORIZED_ACCESS_ATTEMPTS


def refusal_recorded(*, actor: User, resource_group: str, vault_name: str) -> None:
    """After a Forbidden entry for `actor` on a vault: for each enabled rule on unauthorized
    attempts that covers the vault, raise one event once the actor's refusals there within
    the rule's window reach its number of attempts, and no more in that window."""
    rules = events.matching_rules(
        Event(event_type=UNAUTHORIZED, resource_group=resource_group, vault_name=vault_name)
    )
    if not rules:
        return
    # The activity log keeps real time, so its windows are measured in real time.
    now = timezone.now()
    with transaction.atomic():
        for rule in rules:
            _check(rule, actor=actor, vault_name=vault_name, now=now)


def _check(rule: AlertRule, *, actor: User, vault_name: str, now: datetime) -> None:
    window = timedelta(seconds=rule.window_seconds)
    # Windows follow one another from the epoch: a sustained attack raises one event per
    # window, not one per refusal. The services keep windows at a second or more; a row
    # edited by hand must not turn the refusal being recorded into a crash.
    window_number = int(now.timestamp()) // max(rule.window_seconds, 1)
    once = f"unauthorized:{rule.pk}:{vault_name}:{actor.username}:{window_number}"
    if Event.objects.filter(once=once).exists():
        return
    refused = refusals(actor_name=actor.username, vault_name=vault_name, since=now - window)
    # Counting stops at the rule's number: more would change nothing.
    attempts = refused.values("seq")[: rule.attempts].count()
    if attempts < rule.attempts:
        return
    vault = Vault.objects.select_related("resource_group").filter(name=vault_name).first()
    if vault is None:
        return
    events.emit(
        UNAUTHORIZED,
        vault=vault,
        subject=vault.name,
        data={
            **events.vault_data(vault),
            "PrincipalId": str(actor.oid) if actor.oid else None,
            "PrincipalName": actor.username,
            "PrincipalType": actor.kind,
            "Attempts": attempts,
            "WindowSeconds": rule.window_seconds,
        },
        once=once,
        only_rule=rule,
    )


def refusals(*, actor_name: str, vault_name: str, since: datetime) -> QuerySet[ActivityEntry]:
    """The Forbidden entries of one principal on one vault since a time.

    The log is read along its indexes: the first entry of the window is found on the time
    index, and from its seq on, the actor's entries (or the failures) are a range of theirs,
    so the count costs what the window holds, not the actor's whole history.
    """
    first_in_window = (
        ActivityEntry.objects.filter(time__gte=since).order_by("time", "seq").values("seq")[:1]
    )
    return ActivityEntry.objects.filter(
        seq__gte=Subquery(first_in_window), actor_name=actor_name, vault_name=vault_name
    ).with_result(Result.FORBIDDEN)


def lockout_began(*, claimant: User, cool_off: timedelta | None) -> None:
    """Raise SignInLockout for a sign-in name just locked out, naming it as the activity log
    does (`sessions.sign_in_claimant`: a keyed digest for a name no account has)."""
    data: dict[str, Any] = {
        "UserName": claimant.username,
        "PrincipalId": str(claimant.oid) if claimant.oid else None,
        # None: locked out until an administrator unlocks it.
        "CoolOffSeconds": int(cool_off.total_seconds()) if cool_off is not None else None,
    }
    with transaction.atomic():
        events.emit(EventType.SIGN_IN_LOCKOUT, vault=None, subject=claimant.username, data=data)
