"""The vault endpoint: Azure Key Vault's keys REST API, served on each vault's own host.

A thin face over the services. `serve()` is called by the vault-host middleware for every
request to a vault host, ahead of the console's middleware (sessions, CSRF and sign-in mean
nothing here). It answers the bearer challenge before reading any body, checks the
api-version, parses the JSON body, and hands each request to one view, which calls one
service and shapes its result as Azure does (keys/shapes.py). Every request is recorded:
the service records what it does, and a request refused before any service ran is recorded
here through `vaults.services.request_refuse`.
"""

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse

from accounts import tokens
from accounts.models import User
from kvconsole.errors import BadParameter, NotFound, ServiceError, Unauthorized
from kvconsole.middleware import client_ip
from vaults import activity
from vaults import services as vault_services
from vaults.models import Face, Operation
from vaults.permissions import request_cache

from . import crypto, services, shapes
from .models import Key, KeyVersion

logger = logging.getLogger(__name__)

API_VERSIONS = ("7.4", "7.5", "7.6", "2025-07-01")
LATEST_API_VERSION = "2025-07-01"
MAX_PAGE_SIZE = 25
# 9999-12-31T23:59:59Z, the last moment a datetime holds.
MAX_UNIX_SECONDS = 253402300799

Payload = dict[str, Any] | None


class RequestTooLarge(BadParameter):
    status = 413
    code = "RequestBodyTooLarge"


class UnsupportedRequest(NotFound):
    """A path or method the vault endpoint does not have."""


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
class Route:
    """What a path offers, per method: the operation recorded for it and the view."""

    methods: dict[str, tuple[Operation, View]]


def route(**methods: tuple[Operation, View]) -> Route:
    return Route(methods)


# --- serving -------------------------------------------------------------------------------


def serve(request: HttpRequest, vault_name: str) -> HttpResponse:
    """Answer one vault endpoint request for `vault_name`."""
    request_id = str(uuid.uuid4())
    # From META, not request.headers: that one is built from every key of the WSGI
    # environment, which granian fills with the whole process environment.
    client_request_id = request.META.get("HTTP_X_MS_CLIENT_REQUEST_ID", "")
    api_version = request.GET.get("api-version", "")
    with (
        activity.request_context(
            face=Face.API,
            client_ip=client_ip(request),
            correlation_id=client_request_id,
            api_version=api_version,
            request_id=request_id,
        ),
        request_cache(),
    ):
        status, payload, challenge = _answer(request, vault_name, api_version)
    response = HttpResponse(
        b"" if payload is None else json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["x-ms-request-id"] = request_id
    if client_request_id:
        response["x-ms-client-request-id"] = client_request_id[:64]
    response["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    response["X-Content-Type-Options"] = "nosniff"
    if challenge:
        response["WWW-Authenticate"] = (
            f'Bearer authorization="{tokens.authority()}", resource="{tokens.vault_resource()}"'
        )
    return response


def _answer(request: HttpRequest, vault_name: str, api_version: str) -> tuple[int, Payload, bool]:
    """(status, body, whether to send the bearer challenge)."""
    operation, view, kwargs = _route(request)
    target = _target(vault_name, kwargs)
    actor: User | None = None
    try:
        actor = _authenticated(request)
        if view is None:
            raise UnsupportedRequest(
                f"The vault endpoint has no operation {request.method} {request.path}."
            )
        _check_api_version(api_version)
        call = Call(
            request=request,
            actor=actor,
            vault_name=vault_name,
            vault_url=f"https://{request.META.get('HTTP_HOST', '')}",
            api_version=api_version,
            body=_body(request),
        )
        status, payload = view(call, **kwargs)
        return status, payload, False
    except ServiceError as error:
        _record_unless_recorded(actor, operation, error, vault_name, target)
        return error.status, error.as_azure_error(), isinstance(error, Unauthorized)
    except Exception:
        # Never the exception's text or locals in the answer: they may hold key material.
        logger.exception("Vault endpoint request failed: %s %s", request.method, request.path)
        failure = ServiceError("The server failed to process the request; it has been logged.")
        _record_unless_recorded(actor, operation, failure, vault_name, target)
        return failure.status, failure.as_azure_error(), False


def _record_unless_recorded(
    actor: User | None, operation: Operation, error: ServiceError, vault_name: str, target: str
) -> None:
    """Record a refusal no service recorded; `actor` is None before the caller is known."""
    if not activity.written_in_request():
        vault_services.request_refuse(
            actor=actor or vault_services.anonymous_caller(),
            operation=operation,
            error=error,
            vault_name=vault_name,
            target=target,
        )


def _route(request: HttpRequest) -> tuple[Operation, View | None, dict[str, str]]:
    path = request.path_info.removeprefix("/")
    for pattern, handlers in ROUTES:
        match = pattern.match(path)
        if match is not None:
            found = handlers.methods.get(request.method or "")
            if found is None:
                return Operation.UNSUPPORTED_REQUEST, None, match.groupdict()
            return found[0], found[1], match.groupdict()
    return Operation.UNSUPPORTED_REQUEST, None, {}


def _target(vault_name: str, kwargs: dict[str, str]) -> str:
    target = f"vaults/{vault_name}"
    if "name" in kwargs:
        target += f"/keys/{kwargs['name']}"
        if kwargs.get("version"):
            target += f"/{kwargs['version']}"
    return target


def _authenticated(request: HttpRequest) -> User:
    """The application principal behind the request's bearer token.

    Checked before anything else is read: a client's first request carries no token and no
    body, and must get the challenge that tells it where to get one.
    """
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
    return tokens.principal_for(token.strip())


def _check_api_version(api_version: str) -> None:
    if not api_version:
        raise BadParameter(
            f"The api-version query parameter is required; use one of {', '.join(API_VERSIONS)}."
        )
    if api_version not in API_VERSIONS:
        raise BadParameter(
            f"The specified version ({api_version}) is not recognized. Consider using the "
            f"latest supported version ({LATEST_API_VERSION})."
        )


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadParameter("The Content-Length header is not a number.") from None
    limit = settings.KVCONSOLE_MAX_REQUEST_BYTES
    if length > limit:
        raise RequestTooLarge(f"The request body is {length} bytes; at most {limit} are accepted.")
    if length == 0 or request.method not in ("POST", "PUT", "PATCH"):
        return {}
    try:
        body = json.loads(request.body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadParameter("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadParameter("The request body must be a JSON object.")
    return body


# --- reading request bodies ------------------------------------------------------------------


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON, though Python's parser takes them."""
    raise ValueError(name)


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


def key_get(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    found = services.key_get(
        actor=call.actor, vault_name=call.vault_name, name=name, version=_version(version)
    )
    return 200, shapes.key_bundle(found, call.vault_url)


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


def key_delete(call: Call, name: str) -> tuple[int, Payload]:
    key = services.key_delete(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.deleted_key_bundle(key, call.vault_url)


def key_list(call: Call) -> tuple[int, Payload]:
    page = _page(call, "keys")
    keys = services.key_list(actor=call.actor, vault_name=call.vault_name)
    return 200, _key_page(page, keys, lambda key: shapes.key_item(key, call.vault_url))


def key_list_versions(call: Call, name: str) -> tuple[int, Payload]:
    page = _page(call, f"keys/{name}/versions")
    versions = services.key_list_versions(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, _version_page(page, versions)


def key_rotate(call: Call, name: str) -> tuple[int, Payload]:
    version = services.key_rotate(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.key_bundle(version, call.vault_url)


def key_backup(call: Call, name: str) -> tuple[int, Payload]:
    blob = services.key_backup(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, {"value": crypto.b64url_encode(blob)}


def key_restore(call: Call, name: str) -> tuple[int, Payload]:
    """POST /keys/restore (`name` is "restore"): the blob names the key it brings back."""
    blob = _bytes(call.body, "value", required=True)
    assert blob is not None
    version = services.key_restore(actor=call.actor, vault_name=call.vault_name, blob=blob)
    return 200, shapes.key_bundle(version, call.vault_url)


# --- deleted keys ----------------------------------------------------------------------------


def deleted_key_list(call: Call) -> tuple[int, Payload]:
    page = _page(call, "deletedkeys")
    keys = services.key_list_deleted(actor=call.actor, vault_name=call.vault_name)
    return 200, _key_page(page, keys, lambda key: shapes.deleted_key_item(key, call.vault_url))


def deleted_key_get(call: Call, name: str) -> tuple[int, Payload]:
    key = services.key_get_deleted(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.deleted_key_bundle(key, call.vault_url)


def deleted_key_purge(call: Call, name: str) -> tuple[int, Payload]:
    services.key_purge(actor=call.actor, vault_name=call.vault_name, name=name)
    return 204, None


def deleted_key_recover(call: Call, name: str) -> tuple[int, Payload]:
    version = services.key_recover(actor=call.actor, vault_name=call.vault_name, name=name)
    return 200, shapes.key_bundle(version, call.vault_url)


# --- cryptographic operations ---------------------------------------------------------------


def _algorithm(call: Call) -> str:
    return _field(call.body, "alg", str, required=True)


def key_encrypt(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    plaintext = _bytes(call.body, "value", required=True)
    assert plaintext is not None
    result = services.key_encrypt(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        algorithm=_algorithm(call),
        plaintext=plaintext,
        iv=_bytes(call.body, "iv"),
        aad=_bytes(call.body, "aad"),
    )
    return 200, shapes.operation_result(result, call.vault_url)


def key_decrypt(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    ciphertext = _bytes(call.body, "value", required=True)
    assert ciphertext is not None
    result = services.key_decrypt(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        algorithm=_algorithm(call),
        ciphertext=ciphertext,
        iv=_bytes(call.body, "iv"),
        tag=_bytes(call.body, "tag"),
        aad=_bytes(call.body, "aad"),
    )
    return 200, shapes.operation_result(result, call.vault_url)


def key_sign(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    digest = _bytes(call.body, "value", required=True)
    assert digest is not None
    result = services.key_sign(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        algorithm=_algorithm(call),
        digest=digest,
    )
    return 200, shapes.operation_result(result, call.vault_url)


def key_verify(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    digest = _bytes(call.body, "digest", required=True)
    signature = _bytes(call.body, "value", required=True)
    assert digest is not None and signature is not None
    result = services.key_verify(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        algorithm=_algorithm(call),
        digest=digest,
        signature=signature,
    )
    return 200, {"value": result.valid}


def key_wrap(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    key = _bytes(call.body, "value", required=True)
    assert key is not None
    result = services.key_wrap(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        algorithm=_algorithm(call),
        key=key,
    )
    return 200, shapes.operation_result(result, call.vault_url)


def key_unwrap(call: Call, name: str, version: str = "") -> tuple[int, Payload]:
    encrypted_key = _bytes(call.body, "value", required=True)
    assert encrypted_key is not None
    result = services.key_unwrap(
        actor=call.actor,
        vault_name=call.vault_name,
        name=name,
        version=_version(version),
        algorithm=_algorithm(call),
        encrypted_key=encrypted_key,
    )
    return 200, shapes.operation_result(result, call.vault_url)


def random_bytes(call: Call) -> tuple[int, Payload]:
    value = services.random_bytes(
        actor=call.actor, vault_name=call.vault_name, count=call.body.get("count")
    )
    return 200, {"value": crypto.b64url_encode(value)}


# --- rotation policies -----------------------------------------------------------------------


def rotation_policy_get(call: Call, name: str) -> tuple[int, Payload]:
    policy = services.key_rotation_policy_get(
        actor=call.actor, vault_name=call.vault_name, name=name
    )
    return 200, shapes.rotation_policy(policy, call.vault_url)


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
    if not isinstance(after, list) or not all(isinstance(part, str) for part in after):
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


# --- routes ------------------------------------------------------------------------------------
#
# Paths are at the root of each vault's host (the SDKs' key ids need it), matched in order
# without their leading slash; each names an operation per method. A name is one segment;
# an empty version segment (`/keys/{name}//sign`) means the current version, as the SDKs
# send it.


def re_path(pattern: str, handlers: Route) -> tuple[re.Pattern[str], Route]:
    return re.compile(pattern), handlers


NAME = r"(?P<name>[^/]+)"
VERSION = r"(?P<version>[^/]*)"
KEY_METHODS = {
    "PUT": (Operation.KEY_IMPORT, key_import),
    "DELETE": (Operation.KEY_DELETE, key_delete),
    "GET": (Operation.KEY_GET, key_get),
    "PATCH": (Operation.KEY_UPDATE, key_update),
}

ROUTES = [
    re_path(r"^keys$", route(GET=(Operation.KEY_LIST, key_list))),
    # POST /keys/restore restores; the other methods are those of a key named "restore".
    re_path(
        r"^keys/(?P<name>restore)$",
        route(POST=(Operation.KEY_RESTORE, key_restore), **KEY_METHODS),
    ),
    re_path(rf"^keys/{NAME}$", route(**KEY_METHODS)),
    re_path(
        rf"^keys/{NAME}/$",
        route(GET=(Operation.KEY_GET, key_get), PATCH=(Operation.KEY_UPDATE, key_update)),
    ),
    re_path(rf"^keys/{NAME}/create$", route(POST=(Operation.KEY_CREATE, key_create))),
    re_path(
        rf"^keys/{NAME}/versions$", route(GET=(Operation.KEY_LIST_VERSIONS, key_list_versions))
    ),
    re_path(rf"^keys/{NAME}/backup$", route(POST=(Operation.KEY_BACKUP, key_backup))),
    re_path(rf"^keys/{NAME}/rotate$", route(POST=(Operation.KEY_ROTATE, key_rotate))),
    re_path(
        rf"^keys/{NAME}/rotationpolicy$",
        route(
            GET=(Operation.KEY_ROTATION_POLICY_GET, rotation_policy_get),
            PUT=(Operation.KEY_ROTATION_POLICY_SET, rotation_policy_set),
        ),
    ),
    re_path(
        rf"^keys/{NAME}/(?P<version>[^/]+)$",
        route(GET=(Operation.KEY_GET, key_get), PATCH=(Operation.KEY_UPDATE, key_update)),
    ),
    re_path(rf"^keys/{NAME}/{VERSION}/encrypt$", route(POST=(Operation.KEY_ENCRYPT, key_encrypt))),
    re_path(rf"^keys/{NAME}/{VERSION}/decrypt$", route(POST=(Operation.KEY_DECRYPT, key_decrypt))),
    re_path(rf"^keys/{NAME}/{VERSION}/sign$", route(POST=(Operation.KEY_SIGN, key_sign))),
    re_path(rf"^keys/{NAME}/{VERSION}/verify$", route(POST=(Operation.KEY_VERIFY, key_verify))),
    re_path(rf"^keys/{NAME}/{VERSION}/wrapkey$", route(POST=(Operation.KEY_WRAP, key_wrap))),
    re_path(rf"^keys/{NAME}/{VERSION}/unwrapkey$", route(POST=(Operation.KEY_UNWRAP, key_unwrap))),
    re_path(r"^deletedkeys$", route(GET=(Operation.KEY_LIST_DELETED, deleted_key_list))),
    re_path(
        rf"^deletedkeys/{NAME}$",
        route(
            GET=(Operation.KEY_GET_DELETED, deleted_key_get),
            DELETE=(Operation.KEY_PURGE, deleted_key_purge),
        ),
    ),
    re_path(
        rf"^deletedkeys/{NAME}/recover$", route(POST=(Operation.KEY_RECOVER, deleted_key_recover))
    ),
    re_path(r"^rng$", route(POST=(Operation.RANDOM_BYTES_GET, random_bytes))),
]
