"""Expiry notices: Event Grid's KeyNearExpiry and KeyExpired for keys' current versions.

`key_check_expiry` runs from cron (`kv check-expiry`). A key's current version with an
`exp` is near expiry once the clock passes `exp` less the Notify action of the key's rotation
policy (Azure's 30 days when it has none), and expired once it passes `exp`. Each notice is
raised once per version and threshold, ever: a changed Notify threshold raises a notice of
its own, and a rotated key's older versions are not current and raise nothing.

Each notice is an operation of its own (Azure's `KeyNearExpiryEventGridNotification` and
`KeyExpiredEventGridNotification`), recorded against the key version in its vault, and
written with its event in one transaction; the run itself is one `KeyCheckExpiry` entry.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import isodate
from django.db.models import QuerySet

from accounts.models import User
from kvconsole import clock
from kvconsole.errors import BadParameter, Conflict
from vaults import activity
from vaults.activity import operation
from vaults.models import Event, EventType, Operation
from vaults.permissions import DEPLOYMENT, Action, authorize
from vaults.services import vault_lookup

from .. import events as key_events
from .. import rotation
from ..models import Key, KeyRotationPolicy, KeyVersion


@dataclass(frozen=True)
class ExpiryNotice:
    """One notice due for a version: near expiry at `threshold`, or expired."""

    event_type: EventType
    version: KeyVersion
    threshold: str = ""

    @property
    def once(self) -> str:
        if self.event_type == EventType.KEY_EXPIRED:
            return f"expired:{self.version.pk}"
        return f"near-expiry:{self.version.pk}:{self.threshold}"


@dataclass
class ExpiryCheck:
    """What a run found: the current versions with an expiry it looked at, and the notices
    it raised (or, in a dry run, would raise)."""

    checked: int = 0
    near_expiry: list[ExpiryNotice] = field(default_factory=list)
    expired: list[ExpiryNotice] = field(default_factory=list)
    dry_run: bool = False


@operation(Operation.KEY_CHECK_EXPIRY)
def key_check_expiry(
    *, actor: User, vault_name: str | None = None, dry_run: bool = False, batch_size: int = 500
) -> ExpiryCheck:
    """Raise the near-expiry and expired notices now due, each once; `dry_run` only lists them."""
    authorize(actor, Action.KEYS_CHECK_EXPIRY, DEPLOYMENT)
    if vault_name is not None:
        vault_lookup(vault_name, actor=actor, action=Action.KEYS_CHECK_EXPIRY)
    if batch_size < 1:
        raise BadParameter("The batch size must be at least 1.")
    now = clock.now()
    check = ExpiryCheck(dry_run=dry_run)
    for batch in _batches(_expiring_keys(vault_name), batch_size):
        due = [notice for key in batch for notice in _due(key, now)]
        check.checked += len(batch)
        raised = {notice.once for notice in due}
        already = set(Event.objects.filter(once__in=raised).values_list("once", flat=True))
        for notice in due:
            if notice.once in already or not (dry_run or _raise(actor=actor, notice=notice)):
                continue
            if notice.event_type == EventType.KEY_EXPIRED:
                check.expired.append(notice)
            else:
                check.near_expiry.append(notice)
    return check


def _expiring_keys(vault_name: str | None) -> QuerySet[Key]:
    keys = Key.objects.filter(
        deleted_at=None, vault__deleted_at=None, current_version__expires__isnull=False
    ).select_related("current_version", "vault__resource_group", "rotation_policy")
    return keys.filter(vault__name=vault_name.lower()) if vault_name is not None else keys


def _batches(keys: QuerySet[Key], size: int) -> Iterator[list[Key]]:
    """The keys in primary-key order, `size` at a time: memory stays flat however many
    there are, and keys created during the run are still reached."""
    last = 0
    while batch := list(keys.filter(pk__gt=last).order_by("pk")[:size]):
        yield batch
        last = batch[-1].pk


def _due(key: Key, now: datetime) -> list[ExpiryNotice]:
    version = key.current_version
    assert version is not None and version.expires is not None
    version.key = key
    threshold = _notify_threshold(key)
    notices = []
    if now >= version.expires - isodate.parse_duration(threshold):
        notices.append(ExpiryNotice(EventType.KEY_NEAR_EXPIRY, version, threshold))
    if now >= version.expires:
        notices.append(ExpiryNotice(EventType.KEY_EXPIRED, version))
    return notices


def _notify_threshold(key: Key) -> str:
    """How long before expiry the key's policy notifies; Azure's default without one."""
    try:
        actions = key.rotation_policy.lifetime_actions
    except KeyRotationPolicy.DoesNotExist:
        return rotation.DEFAULT_NOTIFY.duration
    for entry in actions:
        if entry["action"]["type"] == rotation.NOTIFY:
            return str(entry["trigger"][rotation.BEFORE_EXPIRY])
    return rotation.DEFAULT_NOTIFY.duration


def _raise(*, actor: User, notice: ExpiryNotice) -> bool:
    """Raise one notice; False if another run raised it first."""
    try:
        _NOTIFICATIONS[notice.event_type](actor=actor, notice=notice)
    except Conflict:
        return False
    return True


def _notify(*, actor: User, notice: ExpiryNotice) -> None:
    activity.describe(notice.version)
    with activity.atomic():
        if key_events.emit_for_version(notice.event_type, notice.version, once=notice.once) is None:
            raise Conflict(f"The notice {notice.once} was raised by another run.")


_NOTIFICATIONS = {
    EventType.KEY_NEAR_EXPIRY: operation(Operation.KEY_NEAR_EXPIRY_NOTIFICATION)(_notify),
    EventType.KEY_EXPIRED: operation(Operation.KEY_EXPIRED_NOTIFICATION)(_notify),
}
