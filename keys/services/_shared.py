"""What the key services share: resolving keys and versions, validating input, and
writing new versions."""

import functools
from datetime import datetime
from enum import Enum
from typing import Final, NoReturn

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import User
from kvconsole import clock, sql
from kvconsole.errors import (
    BadParameter,
    Conflict,
    KeyDisabled,
    KeyNotActive,
    NotFound,
    OperationNotAllowed,
)
from vaults import activity, readcache
from vaults.models import EventType, ResourceGroup, Vault
from vaults.permissions import Action, authorize
from vaults.services import vault_lookup

from .. import crypto, protection, rotation
from .. import events as key_events
from ..models import KEY_NAME, KEY_OPERATIONS, Key, KeyVersion
from ..protection import ProtectedMaterial, material_cache


class _Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Final = _Unchanged.UNCHANGED

DEFAULT_KEY_OPS = {
    "RSA": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "EC": ["sign", "verify"],
    "oct": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
}
SUPPORTED_KEY_OPS = {
    "RSA": KEY_OPERATIONS,
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
# Outside nbf/exp a key may still undo what it did while it was valid.
ALLOWED_WHEN_INACTIVE = frozenset({"decrypt", "unwrapKey", "verify"})


# --- lookups -----------------------------------------------------------------------------


def describe_key(vault_name: str, name: str, version: str | None = None) -> None:
    target = f"vaults/{vault_name.lower()}/keys/{name}" + (f"/{version}" if version else "")
    activity.describe(vault=vault_name.lower(), target=target)


def key_not_found(name: str, *, deleted: bool) -> NotFound:
    if deleted:
        return NotFound(f"Deleted Key not found: {name}", code="KeyNotFound")
    return NotFound(
        f"A key with (name/id) {name} was not found in this key vault. If you recently "
        "deleted this key you may be able to recover it using the correct recovery command.",
        code="KeyNotFound",
    )


def raise_not_found(
    actor: User, action: Action, vault_name: str, name: str, *, deleted: bool
) -> NoReturn:
    """Raise the right NotFound, after making sure the actor may know the key is absent."""
    vault = vault_lookup(vault_name, actor=actor, action=action, as_target=False)
    authorize(actor, action, vault)
    raise key_not_found(name, deleted=deleted)


def lock_key(key: Key, *, deleted: bool = False) -> Key:
    """`key` read again and locked inside the caller's transaction, still live (or still
    soft-deleted): what was checked before the transaction may have changed since."""
    locked = (
        Key.objects.select_for_update(of=("self",), no_key=True)
        .select_related("vault__resource_group", "current_version")
        .filter(pk=key.pk, deleted_at__isnull=not deleted, vault__deleted_at=None)
        .first()
    )
    if locked is None:
        raise key_not_found(key.name, deleted=deleted)
    return locked


def keys_named(vault_name: str, name: str) -> QuerySet[Key]:
    return (
        Key.objects.select_related("vault__resource_group", "current_version")
        .alias(name_lower=Lower("name"))
        .filter(name_lower=name.lower(), vault__name=vault_name.lower(), vault__deleted_at=None)
    )


def resolve_key(
    actor: User, action: Action, vault_name: str, name: str, *, deleted: bool = False
) -> Key:
    """A live (or soft-deleted) key, authorized for `action`."""
    describe_key(vault_name, name)
    key = keys_named(vault_name, name).filter(deleted_at__isnull=not deleted).first()
    if key is None:
        raise_not_found(actor, action, vault_name, name, deleted=deleted)
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
        "WHERE vault.{name} = %(vault)s AND vault.{deleted} IS NULL "
        "AND LOWER(k.{name}) = %(key)s AND k.{deleted} IS NULL"
        + (" AND v.{version} = %(version)s" if by_version else "")
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
    # Named parameters: Django's SQLite backend rewrites positional ones with a regular
    # expression over the whole statement, which costs more than the query itself.
    params = {"vault": vault_name.lower(), "key": name.lower()}
    if version:
        params["version"] = version.lower()
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_live_version_sql(bool(version)), params)
        row = cursor.fetchone()
    if row is None:
        return None
    found, key, vault, group = sql.hydrate(row, KeyVersion, Key, Vault, ResourceGroup)
    assert isinstance(found, KeyVersion)
    assert isinstance(key, Key)
    assert isinstance(vault, Vault)
    assert isinstance(group, ResourceGroup)
    vault.resource_group = group
    key.vault = vault
    found.key = key
    return found


def resolve_version(
    actor: User,
    action: Action,
    vault_name: str,
    name: str,
    version: str | None,
    *,
    shared: bool = False,
) -> KeyVersion:
    """A version of a live key (the current one when `version` is empty), authorized.

    With `shared`, for callers that only read the version, it may be an instance this
    process read before at the same state of the database (vaults/readcache.py).
    """
    describe_key(vault_name, name, version)
    if shared:
        found = readcache.cached(
            ("version", vault_name.lower(), name.lower(), (version or "").lower()),
            lambda: _live_version(vault_name, name, version),
        )
    else:
        found = _live_version(vault_name, name, version)
    if found is None:
        raise_not_found(actor, action, vault_name, name, deleted=False)
    activity.describe(found)
    authorize(actor, action, found)
    return found


# --- validation --------------------------------------------------------------------------


def clean_key_name(name: str) -> str:
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        raise BadParameter(
            f"The key name '{name}' is invalid: use 1-127 letters, digits and hyphens."
        )
    return name


def refuse_hsm(kty: str | None, hsm: bool = False) -> None:
    if hsm or (kty or "").endswith("-HSM"):
        raise BadParameter(
            "Hardware-protected (-HSM) keys need a hardware key store, which this deployment "
            "does not have; create a software-protected key (RSA, EC or oct) instead."
        )


def clean_key_ops(key_ops: list[str] | None, kty: str) -> list[str]:
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
    unsupported = [op for op in key_ops if op not in SUPPORTED_KEY_OPS[kty]]
    if unsupported:
        raise BadParameter(
            "Unsupported key operation(s): "
            + ", ".join(f'"{op}"' for op in unsupported)
            + ". Supported values are "
            + ", ".join(f'"{op}"' for op in SUPPORTED_KEY_OPS[kty])
            + "."
        )
    return list(dict.fromkeys(key_ops))


def check_validity(not_before: datetime | None, expires: datetime | None) -> None:
    for moment in (not_before, expires):
        if moment is not None and timezone.is_naive(moment):
            raise BadParameter("Dates must carry a time zone.")
    if not_before is not None and expires is not None and not_before >= expires:
        raise BadParameter("The activation date (nbf) must be earlier than the expiry (exp).")


def check_usable(version: KeyVersion, key_op: str) -> None:
    """Refuse a cryptographic operation the version may not perform now."""
    if not version.enabled:
        raise KeyDisabled(f"Operation {key_op} is not allowed on a disabled key.")
    if key_op not in version.key_ops:
        raise OperationNotAllowed(f"Operation {key_op} is not permitted on this key.")
    if key_op not in ALLOWED_WHEN_INACTIVE:
        now = clock.now()
        if version.not_before is not None and now < version.not_before:
            raise KeyNotActive(
                f"Operation {key_op} is not allowed before the key's activation date (nbf)."
            )
        if version.expires is not None and now >= version.expires:
            raise KeyNotActive(f"Operation {key_op} is not allowed on an expired key.")


def loaded_material(version: KeyVersion) -> crypto.Material:
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
    key = keys_named(vault.name, name).select_for_update(of=("self",), no_key=True).first()
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
        raise deleted_conflict(key.name)
    key.vault = vault
    return key


def deleted_conflict(name: str) -> Conflict:
    return Conflict(
        f"Key {name} is currently in a deleted but recoverable state, and its name cannot be "
        "reused; in this state, the key can only be recovered or purged.",
        inner_code="ObjectIsDeletedButRecoverable",
    )


def add_version(
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
    announce: bool = True,
) -> KeyVersion:
    """Seal `material` into a new version of `key` (inside the caller's transaction), and
    unless told not to (a restore brings back versions that existed), raise
    KeyNewVersionCreated with it."""
    spec = material.spec
    now = clock.now()
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
    if connection.vendor == "postgresql":
        # Declares the write before the material is sealed under the current primary master
        # key, so a master-key rotation's final check (SHARE lock) waits for it.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {KeyVersion._meta.db_table} IN ROW EXCLUSIVE MODE")
    (
        version.master_key_id,
        version.wrapped_data_key,
        version.sealed_material,
    ) = protection.protect(material, aad=version.storage_aad)
    version.save()
    if make_current:
        key.current_version = version
        key.save(update_fields=["current_version", "updated_at"])
    if announce:
        version.key = key
        key_events.emit_for_version(EventType.KEY_NEW_VERSION_CREATED, version)
    # The new version is used straight away by most callers: spare them the load.
    transaction.on_commit(lambda: material_cache.put(version.pk, material))
    return version


def material_like(version: KeyVersion) -> crypto.Material:
    """Fresh material of the version's type and size or curve (slow for RSA: generate it
    before the write transaction)."""
    return crypto.generate(crypto.KeySpec.parse(version.kty, version.size, version.curve or None))


def add_rotated_version(
    key: Key, current: KeyVersion, material: crypto.Material, *, expiry_time: str
) -> KeyVersion:
    """A new current version of the locked `key` carrying fresh `material` and the current
    version's operations and tags (inside the caller's transaction)."""
    now = clock.now()
    return add_version(
        key,
        material,
        origin=KeyVersion.Origin.ROTATED,
        key_ops=list(current.key_ops),
        tags=dict(current.tags),
        # As in Azure: a policy's expiryTime dates every version a rotation makes.
        expires=rotation.after(now, expiry_time) if expiry_time else None,
        created_at=now,
    )


def authorize_new_version(actor: User, action: Action, vault_name: str, name: str) -> Vault:
    """The vault a new version of `name` goes into, once the actor may put it there.

    Authorization comes before any validation, so outsiders learn nothing from refusals.
    """
    describe_key(vault_name, name)
    vault = vault_lookup(vault_name, actor=actor, action=action, as_target=False)
    existing = keys_named(vault.name, name).first()
    authorize(actor, action, existing or vault)
    clean_key_name(name)
    if existing is not None and existing.is_deleted:
        raise deleted_conflict(existing.name)
    return vault


def store_new_version(
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
        version = add_version(
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
