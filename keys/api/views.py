"""The vault endpoint's views: each reads its request's body, calls one service and shapes
the result as Azure does. Paths and methods are dispatched to them by `keys.api`.

Each view declares, with `documented`, Azure's operationId for it and the schemas (schemas.py)
of the body it reads and the body it answers with: the OpenAPI document is made from these
declarations and the route table."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest

from accounts.models import User
from kvconsole.errors import BadParameter

from .. import crypto, services, shapes
from ..models import Key, KeyVersion

MAX_PAGE_SIZE = 25
# 9999-12-31T23:59:59Z, the last moment a datetime holds.
MAX_UNIX_SECONDS = 253402300799

Payload = dict[str, Any] | None


@dataclass(frozen=True)
class Call:
    """One authenticated request, as a view sees it."""

    request: HttpRequest
    actor: User
    vault_name: str
    vault_url: str
    api_version: str
    body: dict[str, Any]


View = Callable[..., tuple[int, Payload]]


@dataclass(frozen=True)
class Documentation:
    """What the OpenAPI document says of a view."""

    operation_id: str
    summary: str
    request: str | None
    # The 200 body's schema; None for a 204 without a body.
    response: str | None
    paged: bool


DOCUMENTATION: dict[View, Documentation] = {}


def documented(
    operation_id: str,
    summary: str,
    *,
    request: str | None = None,
    response: str | None = "KeyBundle",
    paged: bool = False,
) -> Callable[[View], View]:
    def register(view: View) -> View:
        DOCUMENTATION[view] = Documentation(operation_id, summary, request, response, paged)
        return view

    return register


# --- reading request bodies ------------------------------------------------------------------


def _field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False
) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadParameter(f"The property '{name}' is required.")
        return None
    # bool is an int in Python; JSON true is not a number.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadParameter(f"The property '{name}' has the wrong type.")
    if not isinstance(value, kind):
        raise BadParameter(f"The property '{name}' has the wrong type.")
    return value


def _bytes(body: dict[str, Any], name: str, *, required: bool = False) -> bytes | None:
    value = _field(body, name, str, required=required)
    if value is None:
        return None
    try:
        return crypto.b64url_decode(value)
    except BadParameter:
        raise BadParameter(f"The property '{name}' is not valid base64url.") from None


def _required_bytes(body: dict[str, Any], name: str) -> bytes:
    value = _bytes(body, name, required=True)
    assert value is not None
    return value


def _moment(attributes: dict[str, Any], name: str) -> datetime | None:
    value = _field(attributes, name, (int, float))
    if value is None:
        return None
    # The JavaScript SDK sends dates after 2038 as negative numbers (32-bit truncation).
    if not 0 <= value <= MAX_UNIX_SECONDS:
        raise BadParameter(
            f"attributes.{name} must be a Unix time in seconds between 1970 and 9999; "
            f"{value} is not."
        )
    return datetime.fromtimestamp(value, tz=UTC)


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    attributes = _field(body, "attributes", dict) or {}
    if attributes.get("exportable") or body.get("release_policy") is not None:
        raise BadParameter(
            "Exportable keys and key release policies are not supported by this deployment."
        )
    return attributes


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    return _field(body, "tags", dict)


def _key_ops(body: dict[str, Any]) -> list[str] | None:
    return _field(body, "key_ops", list)


def _version(version: str) -> str | None:
    return version or None


# --- keys ------------------------------------------------------------------------------------


@documented("CreateKey", "Create a key, or a new version of it.", request="KeyCreateParameters")
def key_create(call: Call, name: str) -> tuple[int, Payload]:
    attributes = _attributes(call.body)
    enabled = _field(attributes, "enabled", bool)
    version = services.key_create(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        kty=_field(call.body, "kty", str, required=True),
        size=_field(call.body, "key_size", int),
        curve=_field(call.body, "crv", str),
        public_exponent=_field(call.body, "public_exponent", int),
        key_ops=_key_ops(call.body),
        enabled=True if enabled is None else enabled,
        not_before=_moment(attributes, "nbf"),
        expires=_moment(attributes, "exp"),
        tags=_tags(call.body),
    )
    return 200, shapes.key_bundle(version, call.vault_url)


@documented("ImportKey", "Import a key, or a new version of it.", request="KeyImportParameters")
def key_import(call: Call, name: str) -> tuple[int, Payload]:
    attributes = _attributes(call.body)
    enabled = _field(attributes, "enabled", bool)
    version = services.key_import(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        jwk=_field(call.body, "key", dict, required=True),
        hsm=bool(_field(call.body, "Hsm", bool)),
        enabled=True if enabled is None else enabled,
        not_before=_moment(attributes, "nbf"),
        expires=_moment(attributes, "exp"),
        tags=_tags(call.body),
    )
    return 200, shapes.key_bundle(version, call.vault_url)


@documented("GetKey", "The public part of a version (the current one when the version is empty).")
def key_get(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    found = services.key_get(
        actor=call.actor, vault_name=call.vault_name, name=name, version=_version(version)
    )
    return 200, shapes.key_bundle(found, call.vault_url)


@documented(
    "UpdateKey",
    "Change a version's attributes, operations and tags.",
    request="KeyUpdateParameters",
)
def key_update(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    # The JavaScript SDK sends "attributes": {} with every update: what is absent is kept.
    attributes = _attributes(call.body)
    changes: dict[str, Any] = {}
    for field, attribute in (("not_before", "nbf"), ("expires", "exp")):
        if attribute in attributes:
            changes[field] = _moment(attributes, attribute)
    updated = services.key_update(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        enabled=_field(attributes, "enabled", bool),
        key_ops=_key_ops(call.body),
        tags=_tags(call.body),
        **changes,
    )
    return 200, shapes.key_bundle(updated, call.vault_url)


@documented(
    "DeleteKey", "Delete a key with all its versions (recoverable).", response="DeletedKeyBundle"
)
def key_delete(call: Call, name: str) -> tuple[int, Payload]:
    key = services.key_delete(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.deleted_key_bundle(key, call.vault_url)


@documented("GetKeys", "The vault's keys.", response="KeyListResult", paged=True)
def key_list(call: Call) -> tuple[int, Payload]:
    page = _page(call, "keys")
    keys = services.key_list(actor=call.actor, vault_name=call.vault_name)
    return 200, _key_page(page, keys, lambda key: shapes.key_item(key, call.vault_url))


@documented("GetKeyVersions", "A key's versions.", response="KeyListResult", paged=True)
def key_list_versions(call: Call, name: str) -> tuple[int, Payload]:
    page = _page(call, f"keys/{name}/versions")
    versions = services.key_list_versions(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, _version_page(page, versions)


@documented("RotateKey", "Make a new current version of the same type and size.")
def key_rotate(call: Call, name: str) -> tuple[int, Payload]:
    version = services.key_rotate(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.key_bundle(version, call.vault_url)


@documented("BackupKey", "An opaque, authenticated backup of a key.", response="BackupKeyResult")
def key_backup(call: Call, name: str) -> tuple[int, Payload]:
    blob = services.key_backup(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, {"value": crypto.b64url_encode(blob)}


@documented("RestoreKey", "Restore a key from its backup.", request="KeyRestoreParameters")
def key_restore(call: Call) -> tuple[int, Payload]:
    """The blob names the key it brings back."""
    blob = _required_bytes(call.body, "value")
    version = services.key_restore(actor=call.actor, vault_name=call.vault_name, blob=blob)
    return 200, shapes.key_bundle(version, call.vault_url)


# --- deleted keys ----------------------------------------------------------------------------


@documented(
    "GetDeletedKeys", "The vault's deleted keys.", response="DeletedKeyListResult", paged=True
)
def deleted_key_list(call: Call) -> tuple[int, Payload]:
    page = _page(call, "deletedkeys")
    keys = services.key_list_deleted(actor=call.actor, vault_name=call.vault_name)
    return 200, _key_page(page, keys, lambda key: shapes.deleted_key_item(key, call.vault_url))


@documented("GetDeletedKey", "A deleted key.", response="DeletedKeyBundle")
def deleted_key_get(call: Call, name: str) -> tuple[int, Payload]:
    key = services.key_get_deleted(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.deleted_key_bundle(key, call.vault_url)


@documented("PurgeDeletedKey", "Delete a deleted key for good.", response=None)
def deleted_key_purge(call: Call, name: str) -> tuple[int, Payload]:
    services.key_purge(actor=call.actor, vault_name=call.vault_name, name=name)
    return 204, None


@documented("RecoverDeletedKey", "Bring a deleted key back.")
def deleted_key_recover(call: Call, name: str) -> tuple[int, Payload]:
    version = services.key_recover(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.key_bundle(version, call.vault_url)


# --- cryptographic operations ---------------------------------------------------------------


def _on_version(call: Call, name: str, version: str) -> dict[str, Any]:
    """What every cryptographic operation is given: who asks, which version, which algorithm."""
    return {
        "actor": call.actor,
        "vault_name": call.vault_name,
        "name": name,
        "version": _version(version),
        "algorithm": _field(call.body, "alg", str, required=True),
    }


@documented(
    "encrypt", "Encrypt bytes.", request="KeyEncryptParameters", response="KeyOperationResult"
)
def key_encrypt(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    result = services.key_encrypt(
        **_on_version(call, name, version),
        plaintext=_required_bytes(call.body, "value"),
        iv=_bytes(call.body, "iv"),
        aad=_bytes(call.body, "aad"),
    )
    return 200, shapes.operation_result(result, call.vault_url)


@documented(
    "decrypt", "Decrypt bytes.", request="KeyEncryptParameters", response="KeyOperationResult"
)
def key_decrypt(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    result = services.key_decrypt(
        **_on_version(call, name, version),
        ciphertext=_required_bytes(call.body, "value"),
        iv=_bytes(call.body, "iv"),
        tag=_bytes(call.body, "tag"),
        aad=_bytes(call.body, "aad"),
    )
    return 200, shapes.operation_result(result, call.vault_url)


@documented("sign", "Sign a digest.", request="KeySignParameters", response="KeyOperationResult")
def key_sign(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    result = services.key_sign(
        **_on_version(call, name, version), digest=_required_bytes(call.body, "value")
    )
    return 200, shapes.operation_result(result, call.vault_url)


@documented(
    "verify",
    "Verify a signature over a digest.",
    request="KeyVerifyParameters",
    response="KeyVerifyResult",
)
def key_verify(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    result = services.key_verify(
        **_on_version(call, name, version),
        digest=_required_bytes(call.body, "digest"),
        signature=_required_bytes(call.body, "value"),
    )
    return 200, {"value": result.valid}


@documented("wrapKey", "Wrap a key.", request="KeyWrapParameters", response="KeyOperationResult")
def key_wrap(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    result = services.key_wrap(
        **_on_version(call, name, version), key=_required_bytes(call.body, "value")
    )
    return 200, shapes.operation_result(result, call.vault_url)


@documented(
    "unwrapKey", "Unwrap a key.", request="KeyWrapParameters", response="KeyOperationResult"
)
def key_unwrap(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    result = services.key_unwrap(
        **_on_version(call, name, version), encrypted_key=_required_bytes(call.body, "value")
    )
    return 200, shapes.operation_result(result, call.vault_url)


@documented(
    "GetRandomBytes",
    "Random bytes from the operating system.",
    request="GetRandomBytesRequest",
    response="RandomBytes",
)
def random_bytes(call: Call) -> tuple[int, Payload]:
    value = services.random_bytes(
        actor=call.actor, vault_name=call.vault_name, count=call.body.get("count")
    )
    return 200, {"value": crypto.b64url_encode(value)}


# --- rotation policies -----------------------------------------------------------------------


@documented("GetKeyRotationPolicy", "A key's rotation policy.", response="KeyRotationPolicy")
def rotation_policy_get(call: Call, name: str) -> tuple[int, Payload]:
    policy = services.key_rotation_policy_get(
        actor=call.actor, vault_name=call.vault_name, name=name
    )
    return 200, shapes.rotation_policy(policy, call.vault_url)


@documented(
    "UpdateKeyRotationPolicy",
    "Set a key's rotation policy.",
    request="KeyRotationPolicy",
    response="KeyRotationPolicy",
)
def rotation_policy_set(call: Call, name: str) -> tuple[int, Payload]:
    attributes = _field(call.body, "attributes", dict) or {}
    policy = services.key_rotation_policy_set(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        lifetime_actions=call.body.get("lifetimeActions"),
        expiry_time=attributes.get("expiryTime"),
    )
    return 200, shapes.rotation_policy(policy, call.vault_url)


# --- paging ----------------------------------------------------------------------------------
#
# A page request is read before the service is called: a refused one must not be recorded
# as a listing that succeeded.


@dataclass(frozen=True)
class Page:
    call: Call
    path: str
    size: int
    # Where the previous page ended: from an opaque base64url token of our own making.
    after: list[str] | None

    def next_link(self, position: list[str]) -> str:
        token = crypto.b64url_encode(json.dumps(position).encode())
        return (
            f"{self.call.vault_url}/{self.path}?api-version={quote(self.call.api_version)}"
            f"&$skiptoken={token}&maxresults={self.size}"
        )


def _page(call: Call, path: str) -> Page:
    text = call.request.GET.get("maxresults")
    if text is not None and (not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE):
        raise BadParameter(f"maxresults must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    size = int(text) if text is not None else MAX_PAGE_SIZE
    token = call.request.GET.get("$skiptoken")
    if not token:
        return Page(call, path, size, None)
    refused = BadParameter("The $skiptoken is not one this endpoint issued.")
    try:
        after = json.loads(crypto.b64url_decode(token))
    except (BadParameter, ValueError):
        raise refused from None
    if not isinstance(after, list) or not all(
        isinstance(part, str) and "\x00" not in part for part in after
    ):
        raise refused
    if path.endswith("/versions"):
        if len(after) != 2:
            raise refused
        try:
            datetime.fromisoformat(after[0])
        except ValueError:
            raise refused from None
    elif len(after) != 1:
        raise refused
    return Page(call, path, size, after)


def _key_page(
    page: Page, keys: QuerySet[Key], item: Callable[[Key], dict[str, Any]]
) -> dict[str, Any]:
    """A page of keys by (case-insensitive) name, after the skip token's name."""
    keys = keys.alias(name_lower=Lower("name"))
    if page.after:
        keys = keys.filter(name_lower__gt=page.after[0])
    rows = list(keys[: page.size + 1])
    more = len(rows) > page.size
    rows = rows[: page.size]
    return {
        "value": [item(key) for key in rows],
        "nextLink": page.next_link([rows[-1].name.lower()]) if more else None,
    }


def _version_page(page: Page, versions: QuerySet[KeyVersion]) -> dict[str, Any]:
    """A page of versions, oldest first, after the skip token's (created, version)."""
    versions = versions.order_by("created_at", "version")
    if page.after:
        created = datetime.fromisoformat(page.after[0])
        versions = versions.filter(
            Q(created_at__gt=created) | Q(created_at=created, version__gt=page.after[1])
        )
    rows = list(versions[: page.size + 1])
    more = len(rows) > page.size
    rows = rows[: page.size]
    return {
        "value": [shapes.version_item(version, page.call.vault_url) for version in rows],
        "nextLink": page.next_link([rows[-1].created_at.isoformat(), rows[-1].version])
        if more
        else None,
    }
