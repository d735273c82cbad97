"""Backing a key up into one opaque blob, and restoring it."""

import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError

from accounts.models import User
from kvconsole.errors import (
    BadParameter,
    Conflict,
)
from vaults import activity
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import Action, authorize
from vaults.services import vault_lookup

from .. import crypto, protection
from ..models import Key, KeyVersion
from ._shared import (
    add_version,
    clean_key_name,
    deleted_conflict,
    describe_key,
    keys_named,
    loaded_material,
    resolve_key,
)

# The version of the payload inside the sealed blob (the blob has a format of its own).
_PAYLOAD_FORMAT = 1


def _timestamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse_timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@operation(Operation.KEY_BACKUP)
def key_backup(*, actor: User, vault_name: str, name: str) -> bytes:
    """One opaque, authenticated blob holding every version of the key."""
    key = resolve_key(actor, Action.KEY_BACKUP, vault_name, name)
    versions = list(key.versions.all())
    if len(versions) > settings.KVCONSOLE_MAX_BACKUP_VERSIONS:
        raise BadParameter(
            f"Key {key.name} has {len(versions)} versions; backups hold at most "
            f"{settings.KVCONSOLE_MAX_BACKUP_VERSIONS}."
        )
    for version in versions:
        version.key = key
    payload = {
        "format": _PAYLOAD_FORMAT,
        "name": key.name,
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
                "material": crypto.b64url_encode(crypto.private_bytes(loaded_material(version))),
            }
            for version in versions
        ],
    }
    return protection.seal_backup(json.dumps(payload).encode())


def _read_backup(blob: bytes) -> dict[str, Any]:
    payload = json.loads(protection.open_backup(blob))
    if payload.get("format") != _PAYLOAD_FORMAT or not payload.get("versions"):
        raise BadParameter("The key backup holds no restorable key.")
    return payload


@operation(Operation.KEY_RESTORE)
def key_restore(*, actor: User, vault_name: str, blob: bytes) -> KeyVersion:
    """Restore a backup, with its original version ids, into a vault of this deployment."""
    # The vault is the target until the blob names the key.
    vault = vault_lookup(vault_name, actor=actor, action=Action.KEY_RESTORE)
    authorize(actor, Action.KEY_RESTORE, vault)
    payload = _read_backup(blob)
    name = clean_key_name(payload["name"])
    describe_key(vault.name, name)
    conflict = Conflict(
        f"There was a conflict restoring the key {name}: a key with this name already exists "
        "in the vault, live or soft-deleted. Purge or rename it, or restore into another vault.",
    )
    existing = keys_named(vault.name, name).first()
    if existing is not None:
        raise deleted_conflict(existing.name) if existing.is_deleted else conflict
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
                version = add_version(
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
                    # Versions that existed before the backup: nothing new to announce.
                    announce=False,
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
