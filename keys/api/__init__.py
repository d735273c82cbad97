"""The vault endpoint: Azure Key Vault's keys REST API, served on each vault's own host.

A thin face over the services. `serve()` is called by the vault-host middleware for every
request to a vault host, ahead of the console's middleware (sessions, CSRF and sign-in mean
nothing here). It answers the bearer challenge before reading any body, checks the
api-version, parses the JSON body, and hands each request to one view (views.py), which
calls one service and shapes its result as Azure does (keys/shapes.py). Every request is
recorded: the service records what it does, and a request refused before any service ran is
recorded here through `vaults.services.request_refuse`.
"""

import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from accounts import tokens
from accounts.models import User
from kvconsole.errors import (
    BadParameter,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    Throttled,
    Unauthorized,
)
from kvconsole.middleware import client_ip
from vaults import activity, readcache
from vaults import services as vault_services
from vaults.models import Face, Operation
from vaults.permissions import request_cache

from . import ratelimit, views
from .views import Call, Payload, View

logger = logging.getLogger(__name__)

API_VERSIONS = ("7.4", "7.5", "7.6", "2025-07-01")
LATEST_API_VERSION = "2025-07-01"


class RequestTooLarge(BadParameter):
    status = 413
    code = "RequestBodyTooLarge"


class UnsupportedRequest(NotFound):
    """A path or method the vault endpoint does not have."""


@dataclass(frozen=True)
class Route:
    """A path of the vault endpoint, written as the OpenAPI document writes it
    (`/keys/{key-name}/{key-version}/sign`), and what it offers per method: the operation
    recorded for it and the view."""

    path: str
    methods: dict[str, tuple[Operation, View]]
    pattern: re.Pattern[str]


# Path parameters, by the names Azure's REST specification gives them: the view argument
# each fills and what a segment may hold. A name is one segment; an empty version segment
# (`/keys/{name}//sign`, `/keys/{name}/`) means the current version, as the SDKs send it.
PATH_PARAMETERS = {
    "key-name": ("name", "[^/]+"),
    "key-version": ("version", "[^/]*"),
}
_PLACEHOLDER = re.compile(r"\{([a-z-]+)\}")


def route(path: str, **methods: tuple[Operation, View]) -> Route:
    """A route for `path`; its pattern is made from the path, so the two cannot disagree."""
    pattern = ""
    position = 0
    for placeholder in _PLACEHOLDER.finditer(path):
        argument, segment = PATH_PARAMETERS[placeholder.group(1)]
        pattern += re.escape(path[position : placeholder.start()]) + f"(?P<{argument}>{segment})"
        position = placeholder.end()
    pattern += re.escape(path[position:])
    return Route(path, methods, re.compile(f"^{pattern.removeprefix('/')}$"))


# --- serving -------------------------------------------------------------------------------


def serve(request: HttpRequest, vault_name: str) -> HttpResponse:
    """Answer one vault endpoint request for `vault_name`."""
    request_id = str(uuid.uuid4())
    client_request_id = _client_request_id(request)
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
        readcache.scope(),
    ):
        status, payload, refusal = _answer(request, vault_name, api_version)
    response = HttpResponse(
        b"" if payload is None else json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["x-ms-request-id"] = request_id
    if client_request_id:
        response["x-ms-client-request-id"] = client_request_id
    if settings.SECURE_HSTS_SECONDS:
        response["Strict-Transport-Security"] = (
            f"max-age={settings.SECURE_HSTS_SECONDS}; includeSubDomains"
        )
    response["X-Content-Type-Options"] = "nosniff"
    if isinstance(refusal, Unauthorized):
        response["WWW-Authenticate"] = (
            f'Bearer authorization="{tokens.authority()}", resource="{tokens.vault_resource()}"'
        )
    elif isinstance(refusal, (Throttled, ServiceUnavailable)):
        # Azure sends none when throttling, but the SDKs retry a throttled POST only when
        # told how long to wait (reference §10).
        response["Retry-After"] = str(refusal.retry_after)
    return response


# Database errors that say it cannot do the work now, rather than that the work is wrong.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The service is temporarily unavailable; retry the request later.", retry_after=5
    )


def unavailable_response() -> HttpResponse:
    """503 in Azure's shape, for a request that failed before its vault was known."""
    refusal = unavailable()
    response = HttpResponse(
        json.dumps(refusal.as_azure_error(), separators=(",", ":")),
        status=refusal.status,
        content_type="application/json; charset=utf-8",
    )
    response["Retry-After"] = str(refusal.retry_after)
    return response


def _client_request_id(request: HttpRequest) -> str:
    """The client's x-ms-client-request-id, to echo and record: up to 64 printable ASCII
    characters, or none at all (a line break in it would split the header it is echoed in)."""
    # From META, not request.headers: that one is built from every key of the WSGI
    # environment, which granian fills with the whole process environment.
    value = request.META.get("HTTP_X_MS_CLIENT_REQUEST_ID", "")[:64]
    return value if value.isascii() and value.isprintable() else ""


def _answer(
    request: HttpRequest, vault_name: str, api_version: str
) -> tuple[int, Payload, ServiceError | None]:
    """(status, body, the refusal if the request was refused)."""
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
        ratelimit.admit(vault_name=vault_name, principal_oid=actor.oid, operation=operation)
        call = Call(
            request=request,
            actor=actor,
            vault_name=vault_name,
            vault_url=f"https://{request.META.get('HTTP_HOST', '')}",
            api_version=api_version,
            body=_body(request),
        )
        status, payload = view(call, **kwargs)
        return status, payload, None
    except ServiceError as error:
        _record_unless_recorded(actor, operation, error, vault_name, target)
        return error.status, error.as_azure_error(), error
    except DATABASE_UNAVAILABLE:
        # Restarting, failing over or too busy: the client retries after a while. Django
        # drops the broken connection when the request ends; the next one connects anew.
        logger.exception("Vault endpoint request failed: the database is unavailable")
        refusal = unavailable()
        try:
            _record_unless_recorded(actor, operation, refusal, vault_name, target)
        except DATABASE_UNAVAILABLE:
            logger.warning("Unrecorded 503: %s %s", request.method, request.path)
        return refusal.status, refusal.as_azure_error(), refusal
    except Exception:
        # Never the exception's text or locals in the answer: they may hold key material.
        logger.exception("Vault endpoint request failed: %s %s", request.method, request.path)
        failure = ServiceError("The server failed to process the request; it has been logged.")
        _record_unless_recorded(actor, operation, failure, vault_name, target)
        return failure.status, failure.as_azure_error(), None


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
    """The first route whose path matches and that offers the method: `/keys/restore` is
    POST's restore, and a key named "restore" for every other method."""
    # A NUL is in no name, and PostgreSQL's text holds none: U+FFFD is in no name either.
    path = request.path_info.removeprefix("/").replace("\x00", "\ufffd")
    method = request.method or ""
    unsupported: dict[str, str] | None = None
    for handlers in ROUTES:
        match = handlers.pattern.match(path)
        if match is not None:
            found = handlers.methods.get(method)
            if found is not None:
                return found[0], found[1], match.groupdict()
            if unsupported is None:
                unsupported = match.groupdict()
    return Operation.UNSUPPORTED_REQUEST, None, unsupported or {}


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


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON, though Python's parser takes them."""
    raise ValueError(name)


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


# --- routes ------------------------------------------------------------------------------------
#
# Paths are at the root of each vault's host (the SDKs' key ids need it). This table is also
# what the OpenAPI document (openapi.py) is made from, so each path here is documented.

KEY_METHODS = {
    "PUT": (Operation.KEY_IMPORT, views.key_import),
    "DELETE": (Operation.KEY_DELETE, views.key_delete),
    "GET": (Operation.KEY_GET, views.key_get),
    "PATCH": (Operation.KEY_UPDATE, views.key_update),
}

ROUTES = [
    # The cryptographic operations first: they are nearly every request an application
    # sends, and no other route ends in their last segment.
    route(
        "/keys/{key-name}/{key-version}/encrypt", POST=(Operation.KEY_ENCRYPT, views.key_encrypt)
    ),
    route(
        "/keys/{key-name}/{key-version}/decrypt", POST=(Operation.KEY_DECRYPT, views.key_decrypt)
    ),
    route("/keys/{key-name}/{key-version}/sign", POST=(Operation.KEY_SIGN, views.key_sign)),
    route("/keys/{key-name}/{key-version}/verify", POST=(Operation.KEY_VERIFY, views.key_verify)),
    route("/keys/{key-name}/{key-version}/wrapkey", POST=(Operation.KEY_WRAP, views.key_wrap)),
    route(
        "/keys/{key-name}/{key-version}/unwrapkey", POST=(Operation.KEY_UNWRAP, views.key_unwrap)
    ),
    route("/keys", GET=(Operation.KEY_LIST, views.key_list)),
    route("/keys/restore", POST=(Operation.KEY_RESTORE, views.key_restore)),
    route("/keys/{key-name}", **KEY_METHODS),
    route("/keys/{key-name}/create", POST=(Operation.KEY_CREATE, views.key_create)),
    route(
        "/keys/{key-name}/versions",
        GET=(Operation.KEY_LIST_VERSIONS, views.key_list_versions),
    ),
    route("/keys/{key-name}/backup", POST=(Operation.KEY_BACKUP, views.key_backup)),
    route("/keys/{key-name}/rotate", POST=(Operation.KEY_ROTATE, views.key_rotate)),
    route(
        "/keys/{key-name}/rotationpolicy",
        GET=(Operation.KEY_ROTATION_POLICY_GET, views.rotation_policy_get),
        PUT=(Operation.KEY_ROTATION_POLICY_SET, views.rotation_policy_set),
    ),
    # After the named segments above: a version is whatever else the segment holds.
    route(
        "/keys/{key-name}/{key-version}",
        GET=(Operation.KEY_GET, views.key_get),
        PATCH=(Operation.KEY_UPDATE, views.key_update),
    ),
    route("/deletedkeys", GET=(Operation.KEY_LIST_DELETED, views.deleted_key_list)),
    route(
        "/deletedkeys/{key-name}",
        GET=(Operation.KEY_GET_DELETED, views.deleted_key_get),
        DELETE=(Operation.KEY_PURGE, views.deleted_key_purge),
    ),
    route(
        "/deletedkeys/{key-name}/recover",
        POST=(Operation.KEY_RECOVER, views.deleted_key_recover),
    ),
    route("/rng", POST=(Operation.RANDOM_BYTES_GET, views.random_bytes)),
]
