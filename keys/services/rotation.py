"""Reading and setting keys' rotation policies, and rotating keys when their policy says."""

from dataclasses import dataclass
from datetime import datetime

from accounts.models import User
from kvconsole import clock
from vaults import activity
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import Action

from .. import rotation
from ..models import Key, KeyRotationPolicy, KeyVersion
from ._shared import add_rotated_version, lock_key, material_like, resolve_key


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
    return RotationPolicy(
        key,
        rotation.stored_policy(stored.lifetime_actions, stored.expiry_time),
        stored.created_at,
        stored.updated_at,
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


def rotation_due(version: KeyVersion | None, stored: KeyRotationPolicy | None) -> bool:
    """Whether `stored`'s Rotate action is due now for `version`, a key's current version.

    A disabled current version was switched off on purpose: rotating would bring in an
    enabled successor, so it is never due.
    """
    if version is None or stored is None or not version.enabled:
        return False
    due_at = rotation.rotation_due_at(
        rotation.stored_policy(stored.lifetime_actions, stored.expiry_time),
        created_at=version.created_at,
        expires=version.expires,
    )
    return due_at is not None and due_at <= clock.now()


@operation(Operation.KEY_ROTATE_IF_DUE)
def key_rotate_if_due(*, actor: User, vault_name: str, name: str) -> KeyVersion | None:
    """Rotate the key if its policy's Rotate action is due now; the new version, or None.

    Due-ness is decided again under the key's row lock, in the transaction that adds the
    version, so that of two runs at once only one rotates (on SQLite the IMMEDIATE
    transaction already admits one writer at a time; on PostgreSQL the row lock queues
    them). The new material is generated before that transaction, as it is slow.
    """
    key = resolve_key(actor, Action.KEY_ROTATE, vault_name, name)
    judged = key.current_version
    if not rotation_due(judged, KeyRotationPolicy.objects.filter(key=key).first()):
        return None
    assert judged is not None
    material = material_like(judged)
    with activity.atomic():
        locked = lock_key(key)
        # Compared by id: on PostgreSQL a row lock that waited re-reads the key row but not
        # the version joined to it, so `locked.current_version` may lag behind its id.
        if locked.current_version_id != judged.pk:
            return None
        stored = KeyRotationPolicy.objects.filter(key=locked).first()
        current = KeyVersion.objects.get(pk=judged.pk)
        if not rotation_due(current, stored):
            return None
        assert stored is not None
        version = add_rotated_version(locked, current, material, expiry_time=stored.expiry_time)
        activity.describe(version)
    return version
