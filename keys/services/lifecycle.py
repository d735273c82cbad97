"""Creating, reading, changing, rotating, deleting and recovering keys."""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from kvconsole import clock
from kvconsole.errors import (
    BadParameter,
    Forbidden,
)
from vaults import activity
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import Action, authorize, may
from vaults.services import vault_lookup
from vaults.validation import clean_tags

from .. import crypto, selectors
from ..models import Key, KeyRotationPolicy, KeyVersion
from ..protection import material_cache
from ._shared import (
    UNCHANGED,
    _Unchanged,
    add_rotated_version,
    add_version,
    authorize_new_version,
    check_validity,
    clean_key_ops,
    describe_key,
    key_not_found,
    loaded_material,
    lock_key,
    material_like,
    refuse_hsm,
    resolve_key,
    resolve_version,
    store_new_version,
)


@operation(Operation.KEY_CREATE)
def key_create(
    *,
    actor: User,
    vault_name: str,
    name: str,
    kty: str = "RSA",
    size: int | None = None,
    curve: str | None = None,
    public_exponent: int | None = None,
    key_ops: list[str] | None = None,
    enabled: bool = True,
    not_before: datetime | None = None,
    expires: datetime | None = None,
    tags: dict[str, str] | None = None,
) -> KeyVersion:
    """Generate a key (or a new version of an existing one) with Azure's defaults."""
    vault = authorize_new_version(actor, Action.KEY_CREATE, vault_name, name)
    refuse_hsm(kty)
    spec = crypto.KeySpec.parse(kty, size=size, curve=curve)
    if public_exponent not in (None, 65537):
        raise BadParameter("Only the public exponent 65537 is supported.")
    check_validity(not_before, expires)
    key_ops = clean_key_ops(key_ops, spec.kty)
    tags = clean_tags(tags)
    # Generation is slow (RSA-4096 takes a second); it runs before the write transaction.
    material = crypto.generate(spec)
    return store_new_version(
        vault,
        name,
        material,
        origin=KeyVersion.Origin.GENERATED,
        key_ops=key_ops,
        enabled=enabled,
        not_before=not_before,
        expires=expires,
        tags=tags,
    )


@operation(Operation.KEY_IMPORT)
def key_import(
    *,
    actor: User,
    vault_name: str,
    name: str,
    jwk: dict[str, Any] | None = None,
    pem: bytes | None = None,
    pem_password: bytes | None = None,
    hsm: bool = False,
    key_ops: list[str] | None = None,
    enabled: bool = True,
    not_before: datetime | None = None,
    expires: datetime | None = None,
    tags: dict[str, str] | None = None,
) -> KeyVersion:
    """Import private material from a JWK or PEM; an existing name gets a new version."""
    vault = authorize_new_version(actor, Action.KEY_IMPORT, vault_name, name)
    if (jwk is None) == (pem is None):
        raise BadParameter("Give the key to import either as a JWK or as PEM, not both.")
    if jwk is not None and not isinstance(jwk, dict):
        raise BadParameter("The key must be a JSON Web Key object.")
    refuse_hsm(str(jwk.get("kty", "")) if jwk else None, hsm)
    if jwk is not None and key_ops is None and "key_ops" in jwk:
        key_ops = jwk["key_ops"]
    check_validity(not_before, expires)
    tags = clean_tags(tags)
    material = (
        crypto.import_jwk(jwk) if jwk is not None else crypto.import_pem(pem or b"", pem_password)
    )
    return store_new_version(
        vault,
        name,
        material,
        origin=KeyVersion.Origin.IMPORTED,
        key_ops=clean_key_ops(key_ops, material.kty),
        enabled=enabled,
        not_before=not_before,
        expires=expires,
        tags=tags,
    )


@operation(Operation.KEY_GET)
def key_get(*, actor: User, vault_name: str, name: str, version: str | None = None) -> KeyVersion:
    """A version's public bundle: the current version unless one is named."""
    return resolve_version(actor, Action.KEY_GET, vault_name, name, version)


@operation(Operation.KEY_LIST)
def key_list(*, actor: User, vault_name: str) -> QuerySet[Key]:
    """The vault's live keys that the actor may read, with their current versions, by name."""
    return _readable_keys(actor, vault_name, deleted=False)


def _readable_keys(actor: User, vault_name: str, *, deleted: bool) -> QuerySet[Key]:
    """Keys the actor may list: all of them with a grant on the vault (or above), only
    those granted one by one otherwise, and a refusal for someone with no grant here."""
    vault = vault_lookup(vault_name, actor=actor, action=Action.KEY_LIST)
    keys = selectors.key_list(actor=actor, vault=vault, deleted=deleted)
    if not may(actor, Action.KEY_LIST, vault) and not keys.exists():
        authorize(actor, Action.KEY_LIST, vault)
    return keys


@operation(Operation.KEY_LIST_VERSIONS)
def key_list_versions(*, actor: User, vault_name: str, name: str) -> QuerySet[KeyVersion]:
    key = resolve_key(actor, Action.KEY_LIST, vault_name, name)
    return selectors.key_version_list(actor=actor, key=key)


@operation(Operation.KEY_UPDATE)
def key_update(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    enabled: bool | None = None,
    not_before: datetime | _Unchanged | None = UNCHANGED,
    expires: datetime | _Unchanged | None = UNCHANGED,
    key_ops: list[str] | None = None,
    tags: dict[str, str] | None = None,
) -> KeyVersion:
    """Change a version's attributes; its material never changes."""
    target = resolve_version(actor, Action.KEY_UPDATE, vault_name, name, version)
    changes: dict[str, Any] = {}
    if enabled is not None:
        changes["enabled"] = bool(enabled)
    if not_before is not UNCHANGED:
        changes["not_before"] = not_before
    if expires is not UNCHANGED:
        changes["expires"] = expires
    if key_ops is not None:
        changes["key_ops"] = clean_key_ops(key_ops, target.kty)
    if tags is not None:
        changes["tags"] = clean_tags(tags)
    with activity.atomic():
        # Read again under a lock and write only what this call changes: a concurrent
        # update of other attributes must not be undone (re-enabling a disabled version).
        row = (
            KeyVersion.objects.select_for_update(of=("self",), no_key=True)
            .filter(pk=target.pk, key__deleted_at=None)
            .first()
        )
        if row is None:
            raise key_not_found(target.key.name, deleted=False)
        for field, value in changes.items():
            setattr(row, field, value)
        check_validity(row.not_before, row.expires)
        row.updated_at = clock.now()
        row.save(update_fields=[*changes, "updated_at"])
    if not row.enabled:
        material_cache.forget([row.pk])
    row.key = target.key
    return row


@operation(Operation.KEY_ROTATE)
def key_rotate(*, actor: User, vault_name: str, name: str) -> KeyVersion:
    """A new current version with fresh material of the current version's type and size."""
    key = resolve_key(actor, Action.KEY_ROTATE, vault_name, name)
    current = key.current_version
    assert current is not None
    material = material_like(current)
    policy = KeyRotationPolicy.objects.filter(key=key).first()
    with activity.atomic():
        version = add_rotated_version(
            lock_key(key), current, material, expiry_time=policy.expiry_time if policy else ""
        )
        activity.describe(version)
    return version


@operation(Operation.KEY_REVERT)
def key_revert(*, actor: User, vault_name: str, name: str, version: str) -> KeyVersion:
    """A new current version that carries the material of an earlier version."""
    if not version:
        describe_key(vault_name, name)
        raise BadParameter("Name the version to revert to.")
    source = resolve_version(actor, Action.KEY_ROTATE, vault_name, name, version)
    if source.is_current:
        raise BadParameter(f"Version {source.version} is already the current version.")
    # A version is disabled or left to expire so that it is not used again (compromise,
    # retirement); reverting must not quietly bring its material back.
    if not source.enabled:
        raise BadParameter(
            f"Version {source.version} is disabled; enable it first to revert to it."
        )
    if source.expires is not None and source.expires <= clock.now():
        raise BadParameter(
            f"Version {source.version} has expired; extend its expiry first to revert to it."
        )
    material = loaded_material(source)
    with activity.atomic():
        reverted = add_version(
            lock_key(source.key),
            material,
            origin=KeyVersion.Origin.REVERTED,
            source_version=source.version,
            key_ops=list(source.key_ops),
            tags=dict(source.tags),
        )
        activity.describe(reverted)
    return reverted


@operation(Operation.KEY_DELETE)
def key_delete(*, actor: User, vault_name: str, name: str) -> Key:
    """Soft-delete every version of a key; the name stays taken until it is purged."""
    key = resolve_key(actor, Action.KEY_DELETE, vault_name, name)
    with activity.atomic():
        key = lock_key(key)
        now = clock.now()
        key.deleted_at = now
        key.scheduled_purge_at = now + timedelta(days=key.vault.soft_delete_retention_days)
        key.save(update_fields=["deleted_at", "scheduled_purge_at", "updated_at"])
    material_cache.forget(list(key.versions.values_list("pk", flat=True)))
    return key


@operation(Operation.KEY_LIST_DELETED)
def key_list_deleted(*, actor: User, vault_name: str) -> QuerySet[Key]:
    return _readable_keys(actor, vault_name, deleted=True)


@operation(Operation.KEY_GET_DELETED)
def key_get_deleted(*, actor: User, vault_name: str, name: str) -> Key:
    return resolve_key(actor, Action.KEY_GET, vault_name, name, deleted=True)


@operation(Operation.KEY_RECOVER)
def key_recover(*, actor: User, vault_name: str, name: str) -> KeyVersion:
    """Undo a soft delete; the key comes back with its current version."""
    key = resolve_key(actor, Action.KEY_RECOVER, vault_name, name, deleted=True)
    with activity.atomic():
        key = lock_key(key, deleted=True)
        key.deleted_at = key.scheduled_purge_at = None
        key.save(update_fields=["deleted_at", "scheduled_purge_at", "updated_at"])
    current = key.current_version
    assert current is not None
    current.key = key
    return current


@operation(Operation.KEY_PURGE)
def key_purge(*, actor: User, vault_name: str, name: str) -> None:
    """Destroy a soft-deleted key for good, unless purge protection still holds it."""
    key = resolve_key(actor, Action.KEY_PURGE, vault_name, name, deleted=True)
    activity.describe(status_code=204)
    with activity.atomic():
        # Locked and checked again: a recover that just committed must not be undone.
        key = lock_key(key, deleted=True)
        assert key.scheduled_purge_at is not None
        if key.vault.purge_protection and clock.now() < key.scheduled_purge_at:
            raise Forbidden(
                'Operation "purge" is not allowed because purge protection is enabled for '
                "this vault; the key cannot be purged before its scheduled purge date, "
                f"{key.scheduled_purge_at:%Y-%m-%d %H:%M} UTC. Vault: {key.vault.name};"
                f"location={key.vault.location}"
            )
        key.delete()
