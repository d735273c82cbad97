"""Azure Key Vault wire shapes: KeyBundle, KeyItem, DeletedKeyBundle, KeyOperationResult.

Shared by every face that shows keys the Azure way. Dates are integer Unix seconds and
bytes unpadded base64url, as on the wire. Only public material ever appears here.
"""

from datetime import datetime
from typing import Any

from . import crypto
from .models import Key, KeyVersion
from .services import OperationResult, RotationPolicy


def _seconds(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def _base(vault_url: str) -> str:
    return vault_url.rstrip("/")


def key_id(version: KeyVersion, vault_url: str) -> str:
    return f"{_base(vault_url)}/keys/{version.key.name}/{version.version}"


def attributes(version: KeyVersion) -> dict[str, Any]:
    vault = version.key.vault
    result: dict[str, Any] = {"enabled": version.enabled}
    if version.not_before:
        result["nbf"] = _seconds(version.not_before)
    if version.expires:
        result["exp"] = _seconds(version.expires)
    result.update(
        created=_seconds(version.created_at),
        updated=_seconds(version.updated_at),
        recoveryLevel=vault.recovery_level,
        recoverableDays=vault.soft_delete_retention_days,
        exportable=False,
    )
    return result


def key_bundle(version: KeyVersion, vault_url: str) -> dict[str, Any]:
    jwk = {"kid": key_id(version, vault_url), "kty": version.kty, "key_ops": version.key_ops}
    jwk.update({name: value for name, value in version.public_jwk.items() if name != "kty"})
    return {"key": jwk, "attributes": attributes(version), "tags": version.tags or None}


def key_item(key: Key, vault_url: str) -> dict[str, Any]:
    version = key.current_version
    assert version is not None
    version.key = key
    return {
        "kid": f"{_base(vault_url)}/keys/{key.name}",
        "attributes": attributes(version),
        "tags": version.tags or None,
    }


def version_item(version: KeyVersion, vault_url: str) -> dict[str, Any]:
    return {
        "kid": key_id(version, vault_url),
        "attributes": attributes(version),
        "tags": version.tags or None,
    }


def _deleted_fields(key: Key, vault_url: str) -> dict[str, Any]:
    return {
        "recoveryId": f"{_base(vault_url)}/deletedkeys/{key.name}",
        "deletedDate": _seconds(key.deleted_at),
        "scheduledPurgeDate": _seconds(key.scheduled_purge_at),
    }


def deleted_key_bundle(key: Key, vault_url: str) -> dict[str, Any]:
    version = key.current_version
    assert version is not None
    version.key = key
    return {**key_bundle(version, vault_url), **_deleted_fields(key, vault_url)}


def deleted_key_item(key: Key, vault_url: str) -> dict[str, Any]:
    return {**key_item(key, vault_url), **_deleted_fields(key, vault_url)}


def operation_result(result: OperationResult, vault_url: str) -> dict[str, Any]:
    shape = {"kid": key_id(result.version, vault_url), "value": crypto.b64url_encode(result.value)}
    for name in ("iv", "tag", "aad"):
        value = getattr(result, name)
        if value is not None:
            shape[name] = crypto.b64url_encode(value)
    return shape


def rotation_policy(shown: RotationPolicy, vault_url: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if shown.policy.expiry_time:
        attributes["expiryTime"] = shown.policy.expiry_time
    if shown.created_at:
        attributes["created"] = _seconds(shown.created_at)
        attributes["updated"] = _seconds(shown.updated_at)
    return {
        "id": f"{_base(vault_url)}/keys/{shown.key.name}/rotationpolicy",
        "lifetimeActions": [action.as_dict() for action in shown.policy.actions],
        "attributes": attributes,
    }
