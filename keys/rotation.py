"""Key rotation policies in Azure's schema, checked with Azure's rules.

A policy is a list of lifetime actions (Rotate or Notify, triggered a duration after a
version's creation or before its expiry) and the expiry (`expiryTime`) given to the versions
a rotation makes. Durations are ISO-8601 (`P90D`, `P3M`, `PT48H`, `P1Y10D`); months and years
count as calendar months and years.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import isodate

from kvconsole.errors import BadParameter

ROTATE, NOTIFY = "Rotate", "Notify"
AFTER_CREATE, BEFORE_EXPIRY = "timeAfterCreate", "timeBeforeExpiry"
MIN_EXPIRY = timedelta(days=28)
# Rotation at least this long after a version's creation and before its expiry.
MIN_ROTATION_MARGIN = timedelta(days=7)


@dataclass(frozen=True)
class LifetimeAction:
    action: str
    trigger: str
    duration: str

    def as_dict(self) -> dict[str, Any]:
        return {"trigger": {self.trigger: self.duration}, "action": {"type": self.action}}


@dataclass(frozen=True)
class Policy:
    actions: tuple[LifetimeAction, ...]
    expiry_time: str

    def action(self, kind: str) -> LifetimeAction | None:
        return next((action for action in self.actions if action.action == kind), None)


# Azure notifies 30 days before expiry unless told otherwise, and shows that policy for a
# key that was never given one.
DEFAULT_NOTIFY = LifetimeAction(NOTIFY, BEFORE_EXPIRY, "P30D")
DEFAULT_POLICY = Policy((DEFAULT_NOTIFY,), "")


def length(duration: str, at: datetime) -> timedelta:
    """How long `duration` lasts from `at` (a month from 31 January is shorter)."""
    parsed = isodate.parse_duration(duration)
    return (at + parsed) - at


def after(at: datetime, duration: str) -> datetime:
    return at + isodate.parse_duration(duration)


def before(at: datetime, duration: str) -> datetime:
    return at - isodate.parse_duration(duration)


def stored_policy(lifetime_actions: list[dict[str, Any]], expiry_time: str) -> Policy:
    """The policy kept in a KeyRotationPolicy row's fields (written by `clean_policy`)."""
    actions = tuple(
        LifetimeAction(
            action=entry["action"]["type"],
            trigger=next(iter(entry["trigger"])),
            duration=next(iter(entry["trigger"].values())),
        )
        for entry in lifetime_actions
    )
    return Policy(actions, expiry_time)


def rotation_due_at(
    policy: Policy, *, created_at: datetime, expires: datetime | None
) -> datetime | None:
    """When the policy's Rotate action falls due for a version created at `created_at` and
    expiring at `expires`; None if it never does (no Rotate action, or one counting back
    from an expiry the version does not have).

    Only the current version is ever judged, and a rotation replaces it with one created
    now: a key whose schedule fell behind rotates once, not once per missed period.
    """
    rotate = policy.action(ROTATE)
    if rotate is None:
        return None
    if rotate.trigger == AFTER_CREATE:
        return after(created_at, rotate.duration)
    return before(expires, rotate.duration) if expires is not None else None


def clean_policy(lifetime_actions: object, expiry_time: object, *, now: datetime) -> Policy:
    """The policy described, once it keeps Azure's rules; without a Notify action it gets
    Azure's default one (30 days before expiry)."""
    if lifetime_actions is None:
        lifetime_actions = []
    if not isinstance(lifetime_actions, list):
        raise BadParameter("lifetimeActions must be a list.")
    expiry = _clean_expiry(expiry_time, now)
    actions = [_clean_action(entry, now) for entry in lifetime_actions]
    kinds = [action.action for action in actions]
    for kind in (ROTATE, NOTIFY):
        if kinds.count(kind) > 1:
            raise BadParameter(f"A rotation policy may have at most one {kind} action.")
    for action in actions:
        _check_margins(action, expiry, now)
    if NOTIFY not in kinds:
        # Added as Azure adds it, even where it falls before the versions are made (an
        # expiry shorter than 30 days): it then notifies as soon as a version exists.
        actions.append(DEFAULT_NOTIFY)
    return Policy(tuple(actions), expiry)


def _clean_expiry(expiry_time: object, now: datetime) -> str:
    if expiry_time in (None, ""):
        return ""
    if not isinstance(expiry_time, str):
        raise BadParameter("attributes.expiryTime must be an ISO-8601 duration such as P90D.")
    if length(_parsed(expiry_time, "attributes.expiryTime"), now) < MIN_EXPIRY:
        raise BadParameter(
            f"attributes.expiryTime must be at least 28 days (P28D); {expiry_time} was given."
        )
    return expiry_time


def _clean_action(entry: object, now: datetime) -> LifetimeAction:
    if not isinstance(entry, dict):
        raise BadParameter("Each lifetime action must be an object with a trigger and an action.")
    action, trigger = entry.get("action"), entry.get("trigger")
    if not isinstance(action, dict) or not isinstance(trigger, dict):
        raise BadParameter("Each lifetime action must be an object with a trigger and an action.")
    kind = str(action.get("type", "")).lower()
    names = {ROTATE.lower(): ROTATE, NOTIFY.lower(): NOTIFY}
    if kind not in names:
        raise BadParameter(f"action.type must be Rotate or Notify; got '{action.get('type')}'.")
    given = {
        name: value
        for name, value in trigger.items()
        if name in (AFTER_CREATE, BEFORE_EXPIRY) and value is not None
    }
    if len(given) != 1:
        raise BadParameter(
            "A trigger must have exactly one of timeAfterCreate and timeBeforeExpiry."
        )
    ((name, duration),) = given.items()
    if not isinstance(duration, str):
        raise BadParameter(f"trigger.{name} must be an ISO-8601 duration such as P30D.")
    _parsed(duration, f"trigger.{name}")
    if name == AFTER_CREATE and names[kind] == NOTIFY:
        raise BadParameter("A Notify action can only be triggered by timeBeforeExpiry.")
    return LifetimeAction(names[kind], name, duration)


def _check_margins(action: LifetimeAction, expiry: str, now: datetime) -> None:
    trigger = length(action.duration, now)
    if action.action == NOTIFY:
        # Notify counts back from each version's own exp, which it may have without a policy.
        if expiry and trigger >= length(expiry, now):
            raise BadParameter("The Notify action must come before the versions expire.")
        return
    if action.trigger == BEFORE_EXPIRY and not expiry:
        raise BadParameter("Rotation before expiry needs attributes.expiryTime.")
    if trigger < MIN_ROTATION_MARGIN:
        raise BadParameter(
            f"Rotation must be at least 7 days (P7D) from creation and from expiry; "
            f"{action.trigger} {action.duration} is too short."
        )
    if expiry and length(expiry, now) - trigger < MIN_ROTATION_MARGIN:
        raise BadParameter(
            f"Rotation must come at least 7 days (P7D) before expiry ({expiry}); "
            f"{action.trigger} {action.duration} leaves too little."
        )


# Durations are kept as sent, in a 32-character column; a century is longer than any key
# should live, and keeps date arithmetic far from its limits.
MAX_DURATION_LENGTH = 32
MAX_DURATION = timedelta(days=36_525)


def _parsed(duration: str, field: str) -> str:
    refused = BadParameter(
        f"{field} must be an ISO-8601 duration such as P90D, of at most a hundred years; "
        f"'{duration[:40]}' is not one."
    )
    if len(duration) > MAX_DURATION_LENGTH:
        raise refused
    try:
        parsed = isodate.parse_duration(duration)
        zero = datetime(2000, 1, 1)
        span = (zero + parsed) - zero
    except (isodate.ISO8601Error, ValueError, OverflowError):
        raise refused from None
    if span <= timedelta(0):
        raise BadParameter(f"{field} must be a positive duration; '{duration}' is not.")
    if span > MAX_DURATION:
        raise refused
    return duration
