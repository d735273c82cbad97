"""Every operation on keys and key versions: authorized, recorded, and the only code that
touches key material.

Services take names (vault, key, version) as the faces receive them and resolve them
here, in one query on the hot path. A missing key is reported only to actors who may act
on the vault, so names do not leak to outsiders.
"""

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import User
from kvconsole import sql
from kvconsole.errors import (
    BadParameter,
    Conflict,
    Forbidden,
    KeyDisabled,
    KeyNotActive,
    NotFound,
    OperationNotAllowed,
)
from vaults import activity
from vaults.activity import operation
from vaults.models import Operation, ResourceGroup, Vault
from vaults.permissions import DEPLOYMENT, Action, authorize
from vaults.services import vault_lookup
from vaults.validation import clean_tags

from . import crypto, protection, selectors
from .models import KEY_NAME, KEY_OPERATIONS, Key, KeyVersion
from .protection import ProtectedMaterial, material_cache


class _Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Final = _Unchanged.UNCHANGED

DEFAULT_KEY_OPS = {
    "RSA": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "EC": ["sign", "verify"],
    "oct": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
}
_SUPPORTED_KEY_OPS = {
    "RSA": KEY_OPERATIONS,
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
# Outside nbf/exp a key may still undo what it did while it was valid.
_ALLOWED_WHEN_INACTIVE = frozenset({"decrypt", "unwrapKey", "verify"})
_BACKUP_FORMAT = 1


@dataclass(frozen=True)
class OperationResult:
    """What encrypt, decrypt, sign, wrap and unwrap return: Azure's KeyOperationResult."""

    version: KeyVersion
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None

    def __repr__(self) -> str:
        return f"OperationResult(version={self.version.version!r})"


@dataclass(frozen=True)
class VerifyResult:
    version: KeyVersion
    valid: bool


# --- lookups -----------------------------------------------------------------------------


def _describe_key(vault_name: str, name: str, version: str | None = None) -> None:
    target = f"vaults/{vault_name.lower()}/keys/{name}" + (f"/{version}" if version else "")
    activity.describe(vault=vault_name.lower(), target=target)


def _not_found(actor: User, action: Action, vault_name: str, name: str, *, deleted: bool) -> None:
    """Raise the right NotFound, after making sure the actor may know the key is absent."""
    authorize(actor, action, vault_lookup(vault_name, as_target=False))
    if deleted:
        raise NotFound(f"Deleted Key not found: {name}", code="KeyNotFound")
    raise NotFound(
        f"A key with (name/id) {name} was not found in this key vault. If you recently "
        "deleted this key you may be able to recover it using the correct recovery command.",
        code="KeyNotFound",
    )


def _keys_named(vault_name: str, name: str) -> QuerySet[Key]:
    return (
        Key.objects.select_related("vault__resource_group", "current_version")
        .alias(name_lower=Lower("name"))
        .filter(name_lower=name.lower(), vault__name=vault_name.lower(), vault__deleted_at=None)
    )


def _key(actor: User, action: Action, vault_name: str, name: str, *, deleted: bool = False) -> Key:
    """A live (or soft-deleted) key, authorized for `action`."""
    _describe_key(vault_name, name)
    key = _keys_named(vault_name, name).filter(deleted_at__isnull=not deleted).first()
    if key is None:
        _not_found(actor, action, vault_name, name, deleted=deleted)
    assert key is not None
    activity.describe(key)
    authorize(actor, action, key)
    return key


@functools.cache
def _live_version_sql(by_version: bool) -> str:
    quote = connection.ops.quote_name
    version_join = "v.{key} = k.{id}" if by_version else "v.{id} = k.{current}"
    return (
        # Identifiers come from model metadata; every value is a query parameter.
        f"SELECT {sql.columns(KeyVersion, 'v')}, {sql.columns(Key, 'k')}, "  # noqa: S608
        f"{sql.columns(Vault, 'vault')}, {sql.columns(ResourceGroup, 'rg')} "
        f"FROM {quote(Vault._meta.db_table)} vault "
        f"JOIN {quote(ResourceGroup._meta.db_table)} rg ON rg.{{id}} = vault.{{group}} "
        f"JOIN {quote(Key._meta.db_table)} k ON k.{{vault}} = vault.{{id}} "
        f"JOIN {quote(KeyVersion._meta.db_table)} v ON {version_join} "
        "WHERE vault.{name} = %s AND vault.{deleted} IS NULL "
        "AND LOWER(k.{name}) = %s AND k.{deleted} IS NULL"
        + (" AND v.{version} = %s" if by_version else "")
    ).format(
        id=quote("id"),
        key=quote("key_id"),
        current=quote("current_version_id"),
        group=quote("resource_group_id"),
        vault=quote("vault_id"),
        name=quote("name"),
        deleted=quote("deleted_at"),
        version=quote("version"),
    )


def _live_version(vault_name: str, name: str, version: str | None) -> KeyVersion | None:
    """The version (current one when `version` is empty) of a live key, in one query.

    This is the lookup of every key operation, so it runs fixed SQL instead of compiling
    an ORM query with three joins on each call (see kvconsole/sql.py).
    """
    params = [vault_name.lower(), name.lower()] + ([version.lower()] if version else [])
    with connection.cursor() as cursor:
        cursor.execute(_live_version_sql(bool(version)), params)
        row = cursor.fetchone()
    if row is None:
        return None
    cuts = [0]
    for model in (KeyVersion, Key, Vault, ResourceGroup):
        cuts.append(cuts[-1] + sql.field_count(model))
    found = sql.hydrate(KeyVersion, row[cuts[0] : cuts[1]])
    key = sql.hydrate(Key, row[cuts[1] : cuts[2]])
    vault = sql.hydrate(Vault, row[cuts[2] : cuts[3]])
    vault.resource_group = sql.hydrate(ResourceGroup, row[cuts[3] : cuts[4]])
    key.vault = vault
    found.key = key
    return found


def _version(
    actor: User, action: Action, vault_name: str, name: str, version: str | None
) -> KeyVersion:
    """A version of a live key (the current one when `version` is empty), authorized."""
    _describe_key(vault_name, name, version)
    found = _live_version(vault_name, name, version)
    if found is None:
        _not_found(actor, action, vault_name, name, deleted=False)
    assert found is not None
    activity.describe(found)
    authorize(actor, action, found)
    return found


# --- validation --------------------------------------------------------------------------


def _clean_key_name(name: str) -> str:
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        raise BadParameter(
            f"The key name '{name}' is invalid: use 1-127 letters, digits and hyphens."
        )
    return name


def _refuse_hsm(kty: str | None, hsm: bool = False) -> None:
    if hsm or (kty or "").endswith("-HSM"):
        raise BadParameter(
            "Hardware-protected (-HSM) keys need a hardware key store, which this deployment "
            "does not have; create a software-protected key (RSA, EC or oct) instead."
        )


def _clean_key_ops(key_ops: list[str] | None, kty: str) -> list[str]:
    if key_ops is None:
        return list(DEFAULT_KEY_OPS[kty])
    if not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops):
        raise BadParameter("key_ops must be a list of operation names.")
    unknown = [op for op in key_ops if op not in KEY_OPERATIONS]
    if unknown:
        raise BadParameter(
            f"Unknown key operation(s): {', '.join(unknown)}. Supported values are "
            f"{', '.join(KEY_OPERATIONS)}."
        )
    unsupported = [op for op in key_ops if op not in _SUPPORTED_KEY_OPS[kty]]
    if unsupported:
        raise BadParameter(
            "Unsupported key operation(s): "
            + ", ".join(f'"{op}"' for op in unsupported)
            + ". Supported values are "
            + ", ".join(f'"{op}"' for op in _SUPPORTED_KEY_OPS[kty])
            + "."
        )
    return list(dict.fromkeys(key_ops))


def _check_validity(not_before: datetime | None, expires: datetime | None) -> None:
    for moment in (not_before, expires):
        if moment is not None and timezone.is_naive(moment):
            raise BadParameter("Dates must carry a time zone.")
    if not_before is not None and expires is not None and not_before >= expires:
        raise BadParameter("The activation date (nbf) must be earlier than the expiry (exp).")


def _usable(version: KeyVersion, key_op: str) -> None:
    """Refuse a cryptographic operation the version may not perform now."""
    if not version.enabled:
        raise KeyDisabled(f"Operation {key_op} is not allowed on a disabled key.")
    if key_op not in version.key_ops:
        raise OperationNotAllowed(f"Operation {key_op} is not permitted on this key.")
    if key_op not in _ALLOWED_WHEN_INACTIVE:
        now = timezone.now()
        if version.not_before is not None and now < version.not_before:
            raise KeyNotActive(
                f"Operation {key_op} is not allowed before the key's activation date (nbf)."
            )
        if version.expires is not None and now >= version.expires:
            raise KeyNotActive(f"Operation {key_op} is not allowed on an expired key.")


def _material(version: KeyVersion) -> crypto.Material:
    material = material_cache.get(version.pk)
    if material is None:
        material = protection.unprotect(
            version.kty,
            ProtectedMaterial(
                version.master_key_id, version.wrapped_data_key, version.sealed_material
            ),
            aad=version.storage_aad,
        )
        material_cache.put(version.pk, material)
    return material


# --- creating versions ---------------------------------------------------------------------


def _lock_or_create_key(vault: Vault, name: str) -> Key:
    """The key row for `name`, locked for a new version, created if it does not exist yet."""
    key = _keys_named(vault.name, name).select_for_update(of=("self",)).first()
    if key is None:
        try:
            with transaction.atomic():
                key = Key.objects.create(vault=vault, name=name)
        except IntegrityError:
            raise Conflict(
                f"Key {name} is being created by another request; retry later.",
                inner_code="ObjectIsBeingCreated",
            ) from None
    elif key.is_deleted:
        raise _deleted_conflict(key.name)
    key.vault = vault
    return key


def _deleted_conflict(name: str) -> Conflict:
    return Conflict(
        f"Key {name} is currently in a deleted but recoverable state, and its name cannot be "
        "reused; in this state, the key can only be recovered or purged.",
        inner_code="ObjectIsDeletedButRecoverable",
    )


def _add_version(
    key: Key,
    material: crypto.Material,
    *,
    origin: str,
    key_ops: list[str],
    enabled: bool = True,
    not_before: datetime | None = None,
    expires: datetime | None = None,
    tags: dict[str, str] | None = None,
    source_version: str = "",
    version_id: str | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    make_current: bool = True,
) -> KeyVersion:
    """Seal `material` into a new version of `key` (inside the caller's transaction)."""
    spec = material.spec
    now = timezone.now()
    version = KeyVersion(
        key=key,
        kty=spec.kty,
        size=spec.size,
        curve=spec.curve or "",
        public_jwk=crypto.public_jwk(material),
        key_ops=key_ops,
        enabled=enabled,
        not_before=not_before,
        expires=expires,
        tags=tags or {},
        origin=origin,
        source_version=source_version,
        created_at=created_at or now,
        updated_at=updated_at or now,
    )
    if version_id:
        version.version = version_id
    (
        version.master_key_id,
        version.wrapped_data_key,
        version.sealed_material,
    ) = protection.protect(material, aad=version.storage_aad)
    version.save()
    if make_current:
        key.current_version = version
        key.save(update_fields=["current_version", "updated_at"])
    # The new version is used straight away by most callers: spare them the load.
    transaction.on_commit(lambda: material_cache.put(version.pk, material))
    return version


def _authorize_new_version(actor: User, action: Action, vault_name: str, name: str) -> Vault:
    """The vault a new version of `name` goes into, once the actor may put it there.

    Authorization comes before any validation, so outsiders learn nothing from refusals.
    """
    _describe_key(vault_name, name)
    vault = vault_lookup(vault_name, as_target=False)
    existing = _keys_named(vault.name, name).first()
    authorize(actor, action, existing or vault)
    _clean_key_name(name)
    if existing is not None and existing.is_deleted:
        raise _deleted_conflict(existing.name)
    return vault


def _store_new_version(
    vault: Vault,
    name: str,
    material: crypto.Material,
    *,
    origin: str,
    key_ops: list[str],
    enabled: bool,
    not_before: datetime | None,
    expires: datetime | None,
    tags: dict[str, str],
) -> KeyVersion:
    """Write a new current version of `name`, creating the key if it is new."""
    with activity.atomic():
        key = _lock_or_create_key(vault, name)
        version = _add_version(
            key,
            material,
            origin=origin,
            key_ops=key_ops,
            enabled=enabled,
            not_before=not_before,
            expires=expires,
            tags=tags,
        )
        activity.describe(version)
    return version


# --- key lifecycle -------------------------------------------------------------------------


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
    vault = _authorize_new_version(actor, Action.KEY_CREATE, vault_name, name)
    _refuse_hsm(kty)
    spec = crypto.KeySpec.parse(kty, size=size, curve=curve)
    if public_exponent not in (None, 65537):
        raise BadParameter("Only the public exponent 65537 is supported.")
    _check_validity(not_before, expires)
    key_ops = _clean_key_ops(key_ops, spec.kty)
    tags = clean_tags(tags)
    # Generation is slow (RSA-4096 takes a second); it runs before the write transaction.
    material = crypto.generate(spec)
    return _store_new_version(
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
    vault = _authorize_new_version(actor, Action.KEY_IMPORT, vault_name, name)
    if (jwk is None) == (pem is None):
        raise BadParameter("Give the key to import either as a JWK or as PEM, not both.")
    if jwk is not None and not isinstance(jwk, dict):
        raise BadParameter("The key must be a JSON Web Key object.")
    _refuse_hsm(str(jwk.get("kty", "")) if jwk else None, hsm)
    if jwk is not None and key_ops is None and "key_ops" in jwk:
        key_ops = jwk["key_ops"]
    _check_validity(not_before, expires)
    tags = clean_tags(tags)
    material = (
        crypto.import_jwk(jwk) if jwk is not None else crypto.import_pem(pem or b"", pem_password)
    )
    return _store_new_version(
        vault,
        name,
        material,
        origin=KeyVersion.Origin.IMPORTED,
        key_ops=_clean_key_ops(key_ops, material.kty),
        enabled=enabled,
        not_before=not_before,
        expires=expires,
        tags=tags,
    )


@operation(Operation.KEY_GET)
def key_get(*, actor: User, vault_name: str, name: str, version: str | None = None) -> KeyVersion:
    """A version's public bundle: the current version unless one is named."""
    return _version(actor, Action.KEY_READ, vault_name, name, version)


@operation(Operation.KEY_LIST)
def key_list(*, actor: User, vault_name: str) -> QuerySet[Key]:
    """The vault's live keys with their current versions, by name."""
    vault = vault_lookup(vault_name)
    authorize(actor, Action.KEY_READ, vault)
    return selectors.key_list(actor=actor, vault=vault)


@operation(Operation.KEY_LIST_VERSIONS)
def key_list_versions(*, actor: User, vault_name: str, name: str) -> QuerySet[KeyVersion]:
    key = _key(actor, Action.KEY_READ, vault_name, name)
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
    target = _version(actor, Action.KEY_UPDATE, vault_name, name, version)
    if enabled is not None:
        target.enabled = bool(enabled)
    if not_before is not UNCHANGED:
        target.not_before = not_before
    if expires is not UNCHANGED:
        target.expires = expires
    _check_validity(target.not_before, target.expires)
    if key_ops is not None:
        target.key_ops = _clean_key_ops(key_ops, target.kty)
    if tags is not None:
        target.tags = clean_tags(tags)
    target.updated_at = timezone.now()
    with activity.atomic():
        target.save(
            update_fields=["enabled", "not_before", "expires", "key_ops", "tags", "updated_at"]
        )
    if not target.enabled:
        material_cache.forget([target.pk])
    return target


@operation(Operation.KEY_ROTATE)
def key_rotate(*, actor: User, vault_name: str, name: str) -> KeyVersion:
    """A new current version with fresh material of the current version's type and size."""
    key = _key(actor, Action.KEY_ROTATE, vault_name, name)
    current = key.current_version
    assert current is not None
    material = crypto.generate(
        crypto.KeySpec.parse(current.kty, current.size, current.curve or None)
    )
    with activity.atomic():
        key = _lock_or_create_key(key.vault, key.name)
        version = _add_version(
            key,
            material,
            origin=KeyVersion.Origin.ROTATED,
            key_ops=list(current.key_ops),
            tags=dict(current.tags),
        )
        activity.describe(version)
    return version


@operation(Operation.KEY_REVERT)
def key_revert(*, actor: User, vault_name: str, name: str, version: str) -> KeyVersion:
    """A new current version that carries the material of an earlier version."""
    _describe_key(vault_name, name)
    if not version:
        raise BadParameter("Name the version to revert to.")
    source = _version(actor, Action.KEY_ROTATE, vault_name, name, version)
    if source.is_current:
        raise BadParameter(f"Version {source.version} is already the current version.")
    # A version is usually disabled because it must not be used again (compromise,
    # retirement); reverting must not quietly bring its material back.
    if not source.enabled:
        raise BadParameter(
            f"Version {source.version} is disabled; enable it first to revert to it."
        )
    material = _material(source)
    with activity.atomic():
        key = _lock_or_create_key(source.key.vault, source.key.name)
        reverted = _add_version(
            key,
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
    key = _key(actor, Action.KEY_DELETE, vault_name, name)
    now = timezone.now()
    key.deleted_at = now
    key.scheduled_purge_at = now + timedelta(days=key.vault.soft_delete_retention_days)
    with activity.atomic():
        key.save(update_fields=["deleted_at", "scheduled_purge_at", "updated_at"])
    material_cache.forget(list(key.versions.values_list("pk", flat=True)))
    return key


@operation(Operation.KEY_LIST_DELETED)
def key_list_deleted(*, actor: User, vault_name: str) -> QuerySet[Key]:
    vault = vault_lookup(vault_name)
    authorize(actor, Action.KEY_READ, vault)
    return selectors.key_list(actor=actor, vault=vault, deleted=True)


@operation(Operation.KEY_GET_DELETED)
def key_get_deleted(*, actor: User, vault_name: str, name: str) -> Key:
    return _key(actor, Action.KEY_READ, vault_name, name, deleted=True)


@operation(Operation.KEY_RECOVER)
def key_recover(*, actor: User, vault_name: str, name: str) -> KeyVersion:
    """Undo a soft delete; the key comes back with its current version."""
    key = _key(actor, Action.KEY_RECOVER, vault_name, name, deleted=True)
    key.deleted_at = key.scheduled_purge_at = None
    with activity.atomic():
        key.save(update_fields=["deleted_at", "scheduled_purge_at", "updated_at"])
    current = key.current_version
    assert current is not None
    current.key = key
    return current


@operation(Operation.KEY_PURGE)
def key_purge(*, actor: User, vault_name: str, name: str) -> None:
    """Destroy a soft-deleted key for good, unless purge protection still holds it."""
    key = _key(actor, Action.KEY_PURGE, vault_name, name, deleted=True)
    assert key.scheduled_purge_at is not None
    if key.vault.purge_protection and timezone.now() < key.scheduled_purge_at:
        raise Forbidden(
            'Operation "purge" is not allowed because purge protection is enabled for this '
            "vault; the key cannot be purged before its scheduled purge date, "
            f"{key.scheduled_purge_at:%Y-%m-%d %H:%M} UTC. Vault: {key.vault.name};"
            f"location={key.vault.location}",
            inner_code="PurgeProtected",
        )
    activity.describe(status_code=204)
    with activity.atomic():
        key.delete()


# --- backup and restore --------------------------------------------------------------------


def _timestamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse_timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@operation(Operation.KEY_BACKUP)
def key_backup(*, actor: User, vault_name: str, name: str) -> bytes:
    """One opaque, authenticated blob holding every version of the key."""
    key = _key(actor, Action.KEY_BACKUP, vault_name, name)
    versions = list(key.versions.all())
    if len(versions) > settings.KVCONSOLE_MAX_BACKUP_VERSIONS:
        raise BadParameter(
            f"Key {key.name} has {len(versions)} versions; backups hold at most "
            f"{settings.KVCONSOLE_MAX_BACKUP_VERSIONS}."
        )
    for version in versions:
        version.key = key
    payload = {
        "format": _BACKUP_FORMAT,
        "name": key.name,
        "created": _timestamp(key.created_at),
        "current": key.current_version.version if key.current_version else None,
        "versions": [
            {
                "version": version.version,
                "kty": version.kty,
                "keyOps": version.key_ops,
                "enabled": version.enabled,
                "nbf": _timestamp(version.not_before),
                "exp": _timestamp(version.expires),
                "tags": version.tags,
                "origin": version.origin,
                "sourceVersion": version.source_version,
                "created": _timestamp(version.created_at),
                "updated": _timestamp(version.updated_at),
                "material": crypto.b64url_encode(crypto.private_bytes(_material(version))),
            }
            for version in versions
        ],
    }
    return protection.seal_backup(json.dumps(payload).encode())


def _read_backup(blob: bytes) -> dict[str, Any]:
    payload = json.loads(protection.open_backup(blob))
    if payload.get("format") != _BACKUP_FORMAT or not payload.get("versions"):
        raise BadParameter("The key backup holds no restorable key.")
    return payload


@operation(Operation.KEY_RESTORE)
def key_restore(*, actor: User, vault_name: str, blob: bytes) -> KeyVersion:
    """Restore a backup, with its original version ids, into a vault of this deployment."""
    # The vault is the target until the blob names the key.
    vault = vault_lookup(vault_name)
    authorize(actor, Action.KEY_RESTORE, vault)
    payload = _read_backup(blob)
    name = _clean_key_name(payload["name"])
    _describe_key(vault.name, name)
    conflict = Conflict(
        f"There was a conflict restoring the key {name}: a key with this name already exists "
        "in the vault, live or soft-deleted. Purge or rename it, or restore into another vault.",
    )
    existing = _keys_named(vault.name, name).first()
    if existing is not None:
        raise _deleted_conflict(existing.name) if existing.is_deleted else conflict
    restored = [
        (entry, crypto.load_private_bytes(entry["kty"], crypto.b64url_decode(entry["material"])))
        for entry in payload["versions"]
    ]
    try:
        with activity.atomic():
            key = Key.objects.create(vault=vault, name=name)
            key.vault = vault
            current = None
            for entry, material in restored:
                version = _add_version(
                    key,
                    material,
                    origin=entry["origin"],
                    key_ops=entry["keyOps"],
                    enabled=entry["enabled"],
                    not_before=_parse_timestamp(entry["nbf"]),
                    expires=_parse_timestamp(entry["exp"]),
                    tags=entry["tags"],
                    source_version=entry["sourceVersion"],
                    version_id=entry["version"],
                    created_at=_parse_timestamp(entry["created"]),
                    updated_at=_parse_timestamp(entry["updated"]),
                    make_current=False,
                )
                if entry["version"] == payload["current"]:
                    current = version
            key.current_version = current or version
            key.save(update_fields=["current_version"])
            activity.describe(key.current_version)
    except IntegrityError:
        raise conflict from None
    assert key.current_version is not None
    return key.current_version


# --- cryptographic operations ---------------------------------------------------------------


def _prepare(
    actor: User, action: Action, key_op: str, vault_name: str, name: str, version: str | None
) -> tuple[KeyVersion, crypto.Material]:
    target = _version(actor, action, vault_name, name, version)
    _usable(target, key_op)
    return target, _material(target)


@operation(Operation.KEY_ENCRYPT)
def key_encrypt(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    plaintext: bytes,
    iv: bytes | None = None,
    aad: bytes | None = None,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_ENCRYPT, "encrypt", vault_name, name, version)
    result = crypto.encrypt(material, algorithm, plaintext, iv=iv, aad=aad)
    return OperationResult(target, result.ciphertext, result.iv, result.tag, aad)


@operation(Operation.KEY_DECRYPT)
def key_decrypt(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    ciphertext: bytes,
    iv: bytes | None = None,
    tag: bytes | None = None,
    aad: bytes | None = None,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_DECRYPT, "decrypt", vault_name, name, version)
    plaintext = crypto.decrypt(material, algorithm, ciphertext, iv=iv, tag=tag, aad=aad)
    return OperationResult(target, plaintext)


@operation(Operation.KEY_SIGN)
def key_sign(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    digest: bytes,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_SIGN, "sign", vault_name, name, version)
    return OperationResult(target, crypto.sign(material, algorithm, digest))


@operation(Operation.KEY_VERIFY)
def key_verify(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    digest: bytes,
    signature: bytes,
) -> VerifyResult:
    target, material = _prepare(actor, Action.KEY_VERIFY, "verify", vault_name, name, version)
    return VerifyResult(target, crypto.verify(material, algorithm, digest, signature))


@operation(Operation.KEY_WRAP)
def key_wrap(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    key: bytes,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_WRAP, "wrapKey", vault_name, name, version)
    return OperationResult(target, crypto.wrap_key(material, algorithm, key))


@operation(Operation.KEY_UNWRAP)
def key_unwrap(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    encrypted_key: bytes,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_UNWRAP, "unwrapKey", vault_name, name, version)
    return OperationResult(target, crypto.unwrap_key(material, algorithm, encrypted_key))


# --- master key -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterKeyRotation:
    primary: str
    rewrapped: int
    resumed: bool


@operation(Operation.MASTER_KEY_ROTATE)
def master_key_rotate(
    *, actor: User, batch_size: int = 500, progress: Any = None
) -> MasterKeyRotation:
    """Re-wrap every data key under a new master key, in batches; rerun to resume."""
    authorize(actor, Action.MASTER_KEY_ROTATE, DEPLOYMENT)
    if batch_size < 1:
        raise BadParameter("The batch size must be at least 1.")
    keyring, resumed = protection.start_master_key_rotation()
    activity.describe(target=f"masterKeys/{keyring.primary}")
    pending = KeyVersion.objects.exclude(master_key_id=keyring.primary)
    total, rewrapped = pending.count(), 0
    while True:
        with transaction.atomic():
            batch = list(
                pending.select_related("key__vault").select_for_update(of=("self",))[:batch_size]
            )
            if not batch:
                # Drop the retired keys only while no new version can be written, so none
                # is sealed under a retired key between this check and the keyring change.
                # SQLite's BEGIN IMMEDIATE already excludes other writers.
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute(f"LOCK TABLE {KeyVersion._meta.db_table} IN SHARE MODE")
                if pending.exists():
                    continue
                protection.finish_master_key_rotation(keyring)
                break
            for version in batch:
                version.wrapped_data_key = protection.rewrap_data_key(
                    ProtectedMaterial(
                        version.master_key_id, version.wrapped_data_key, version.sealed_material
                    ),
                    aad=version.storage_aad,
                    keyring=keyring,
                )
                version.master_key_id = keyring.primary
            KeyVersion.objects.bulk_update(batch, ["wrapped_data_key", "master_key_id"])
        rewrapped += len(batch)
        if progress is not None:
            progress(rewrapped, total)
    return MasterKeyRotation(keyring.primary, rewrapped, resumed)
