"""Reading and setting keys' rotation policies."""

from dataclasses import dataclass
from datetime import datetime

from accounts.models import User
from kvconsole import clock
from vaults import activity
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import Action

from .. import rotation
from ..models import Key, KeyRotationPolicy
from ._shared import lock_key, resolve_key


@dataclass(frozen=True)
class RotationPolicy:
    """A key's policy as Azure shows it; a key that never had one shows the default."""

    key: Key
    policy: rotation.Policy
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _shown(key: Key, stored: KeyRotationPolicy | None) -> RotationPolicy:
    if stored is None:
        return RotationPolicy(key, rotation.DEFAULT_POLICY)
    actions = tuple(
        rotation.LifetimeAction(
            action=entry["action"]["type"],
            trigger=next(iter(entry["trigger"])),
            duration=next(iter(entry["trigger"].values())),
        )
        for entry in stored.lifetime_actions
    )
    return RotationPolicy(
        key, rotation.Policy(actions, stored.expiry_time), stored.created_at, stored.updated_at
    )


@operation(Operation.KEY_ROTATION_POLICY_GET)
def key_rotation_policy_get(*, actor: User, vault_name: str, name: str) -> RotationPolicy:
    key = resolve_key(actor, Action.ROTATION_POLICY_READ, vault_name, name)
    return _shown(key, KeyRotationPolicy.objects.filter(key=key).first())


@operation(Operation.KEY_ROTATION_POLICY_SET)
def key_rotation_policy_set(
    *,
    actor: User,
    vault_name: str,
    name: str,
    lifetime_actions: object,
    expiry_time: object = None,
) -> RotationPolicy:
    """Replace a key's rotation policy (Azure's rules; a Notify action is added if missing)."""
    key = resolve_key(actor, Action.ROTATION_POLICY_WRITE, vault_name, name)
    now = clock.now()
    policy = rotation.clean_policy(lifetime_actions, expiry_time, now=now)
    with activity.atomic():
        key = lock_key(key)
        stored, _ = KeyRotationPolicy.objects.update_or_create(
            key=key,
            defaults={
                "lifetime_actions": [action.as_dict() for action in policy.actions],
                "expiry_time": policy.expiry_time,
                "updated_at": now,
            },
            create_defaults={
                "lifetime_actions": [action.as_dict() for action in policy.actions],
                "expiry_time": policy.expiry_time,
                "created_at": now,
                "updated_at": now,
            },
        )
    return _shown(key, stored)
