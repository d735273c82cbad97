"""JSON log lines shaped like Azure Monitor's resource logs of Key Vault (category AuditEvent).

Two loggers write one JSON object per line, configured in settings.LOGGING:

* `kvconsole.activity`: one line per activity entry once it is committed (category
  `AuditEvent`), with the fields of its entry;
* `kvconsole.requests`: one line per HTTP request (category `Request`), naming the operation
  the request ran when it ran one.

Both use Azure's field names (`time`, `resourceId`, `operationName`, `operationVersion`,
`category`, `resultType`, `resultSignature`, `resultDescription`, `durationMs`,
`callerIpAddress`, `correlationId`, `identity.claim`, `properties`). Nothing a line holds is
read from a request or response body, a header other than the user agent, or a query string
other than its api-version, so key material, plaintext, digests, signatures, tokens and
secrets have no way into one.

Every vault endpoint request writes two lines, so they are cheap: values go into the line as
they are (times, ids) and orjson writes them.

This module is loaded while logging is configured, before Django's apps: it imports no models.
"""

import functools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from http import HTTPStatus
from typing import IO, Any

import orjson
from django.conf import settings
from django.http import HttpRequest

ACTIVITY = logging.getLogger("kvconsole.activity")
REQUESTS = logging.getLogger("kvconsole.requests")
HANDLER_NAME = "json_lines"

_CLIENT_INFO_LIMIT = 256
_REQUEST_URI_LIMIT = 1024
_STARTED_NS = time.time_ns()

# What a LogRecord works out about where and in what it was made; a line's record leaves it
# blank (it says where it comes from itself).
_BLANK_FIELDS = {
    "args": (),
    "levelname": "INFO",
    "levelno": logging.INFO,
    "pathname": "",
    "filename": "",
    "module": "",
    "exc_info": None,
    "exc_text": None,
    "stack_info": None,
    "lineno": 0,
    "funcName": "",
    "thread": None,
    "threadName": None,
    "processName": None,
    "process": None,
    "taskName": None,
}


class LineRecord(logging.LogRecord):
    """The record of one line. LogRecord works out the calling file and line, the thread,
    process and asyncio task of every record: some sixty calls, a visible share of a key
    operation when each vault endpoint request writes two lines. Nothing formatting these
    lines reads them, so this record is made with the same fields left blank."""

    def __init__(self, name: str, line: dict[str, Any]) -> None:
        created_ns = time.time_ns()
        self.__dict__.update(_BLANK_FIELDS)
        self.name = name
        self.msg = line
        self.created = created_ns / 1e9
        self.msecs = (created_ns % 1_000_000_000) // 1_000_000 + 0.0
        self.relativeCreated = (created_ns - _STARTED_NS) / 1e6


def write(logger: logging.Logger, line: dict[str, Any]) -> None:
    """Hand one line to `logger`'s handlers (the caller has checked that it logs INFO)."""
    logger.handle(LineRecord(logger.name, line))


class JsonLines(logging.Formatter):
    """Each record's message (a dict of the line's fields) as one line of JSON; times in
    UTC as RFC 3339 with a Z, as Azure writes them. A plain message routed here by another
    logger becomes a JSON string."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg if isinstance(record.msg, dict) else record.getMessage()
        return orjson.dumps(message, default=str, option=orjson.OPT_UTC_Z).decode()


def send_lines_to(stream: IO[str]) -> IO[str] | None:
    """Write the JSON lines to `stream` from now on; the stream they went to before."""
    handler = logging.getHandlerByName(HANDLER_NAME)
    if not isinstance(handler, logging.StreamHandler):
        return None
    previous: IO[str] = handler.stream
    handler.setStream(stream)
    return previous


@contextmanager
def lines_to(stream: IO[str]) -> Iterator[None]:
    """Within this block the JSON lines go to `stream`."""
    previous = send_lines_to(stream)
    try:
        yield
    finally:
        if previous is not None:
            send_lines_to(previous)


class ObservedRequest:
    """The HTTP request being served, as its log lines tell it; `entry` is the values of the
    last activity entry it wrote, and `entry_line` that entry's line once written."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.entry: dict[str, Any] | None = None
        self.entry_line: dict[str, Any] | None = None

    @functools.cached_property
    def client_info(self) -> str:
        return str(self.request.META.get("HTTP_USER_AGENT", ""))[:_CLIENT_INFO_LIMIT]

    @functools.cached_property
    def request_uri(self) -> str:
        """The URL asked for, with its api-version but no other query parameter (a query
        string is the client's to fill, with anything at all). The Host header is taken as
        sent: get_host() would refuse one that ALLOWED_HOSTS does not name, and such a
        request is worth its line all the more."""
        request = self.request
        meta = request.META
        host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME", "")
        uri = f"{request.scheme}://{host}{request.path}"
        api_version = request.GET.get("api-version")
        if api_version:
            uri += f"?api-version={api_version[:16]}"
        return uri[:_REQUEST_URI_LIMIT]


# The request being served (set by kvconsole.observability), so that the activity log can
# tell its entries apart.
OBSERVED: ContextVar[ObservedRequest | None] = ContextVar("observed_request", default=None)


def resource_id(resource_group: str, vault_name: str) -> str:
    """The Azure resource id of what an entry concerns: a vault, a resource group, or the
    deployment (one Azure-style subscription)."""
    return _resource_id(settings.KVCONSOLE_SUBSCRIPTION_ID, resource_group, vault_name)


@functools.lru_cache(maxsize=4096)
def _resource_id(subscription_id: str, resource_group: str, vault_name: str) -> str:
    subscription = f"/subscriptions/{subscription_id}"
    group = f"{subscription}/resourceGroups/{resource_group}" if resource_group else subscription
    if vault_name:
        return f"{group}/providers/Microsoft.KeyVault/vaults/{vault_name}"
    return group


_SIGNATURES = {
    status.value: status.phrase.replace(" ", "").replace("-", "") for status in HTTPStatus
}


def result_signature(status_code: int) -> str:
    """The status as Azure's resultSignature spells it (.NET's names: OK, NotFound, ...)."""
    return _SIGNATURES.get(status_code, str(status_code))


@functools.lru_cache(maxsize=4096)
def identity(oid: object, name: str, kind: str) -> dict[str, Any]:
    """Azure's `identity.claim`: the object id, and the client id of an application or the
    user name of anyone else (system principals included). Shared between lines, never
    changed."""
    claim: dict[str, Any] = {"oid": oid} if oid else {}
    if kind == "application":
        claim["appid"] = name.removeprefix("app:")
    else:
        claim["upn"] = name
    return {"claim": claim}


def activity_line(values: dict[str, Any], observed: ObservedRequest | None) -> dict[str, Any]:
    """The line of one committed activity entry, from the values it was written with."""
    properties: dict[str, Any] = {
        "id": values["target"],
        "httpStatusCode": values["status_code"],
        "face": values["face"],
        "requestId": values["request_id"],
    }
    if observed is not None:
        properties["clientInfo"] = observed.client_info
        properties["requestUri"] = observed.request_uri
    return {
        "time": values["time"],
        "resourceId": resource_id(values["resource_group"], values["vault_name"]),
        "operationName": values["operation"],
        "operationVersion": values["api_version"],
        "category": "AuditEvent",
        "resultType": values["result"],
        "resultSignature": result_signature(values["status_code"]),
        "resultDescription": values["message"],
        "durationMs": values["duration_ms"],
        "callerIpAddress": values["client_ip"] or "",
        "correlationId": values["correlation_id"],
        "identity": identity(values["actor_oid"], values["actor_name"], values["actor_kind"]),
        "properties": properties,
    }


# A request that ran no operation has its result named from its status alone.
_RESULTS_BY_STATUS = {
    400: "BadParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
}


def request_line(
    *,
    observed: ObservedRequest,
    status_code: int,
    seconds: float,
    operation: str,
    client_ip: str | None,
    caller: tuple[object, str, str] | None,
) -> dict[str, Any]:
    """The line of one served request. `caller` is (oid, name, kind) of a signed-in person
    when the request ran no operation; an operation's entry names its own actor."""
    request = observed.request
    if observed.entry is not None:
        # What the entry's line says already (it was made for this request a moment ago).
        entry_line = observed.entry_line or activity_line(observed.entry, observed)
        result = entry_line["resultType"]
        resource = entry_line["resourceId"]
        version = entry_line["operationVersion"]
        correlation_id = entry_line["correlationId"]
        who = entry_line["identity"]
        request_id = entry_line["properties"]["requestId"]
    else:
        result = "Success" if status_code < 400 else _RESULTS_BY_STATUS.get(status_code, "Failure")
        resource = resource_id("", "")
        version = request.GET.get("api-version", "")[:16]
        correlation_id = request.META.get("HTTP_X_MS_CLIENT_REQUEST_ID", "")[:64]
        who = identity(*caller) if caller else {}
        request_id = ""
    return {
        "time": datetime.now(UTC),
        "resourceId": resource,
        "operationName": operation,
        "operationVersion": version,
        "category": "Request",
        "resultType": result,
        "resultSignature": result_signature(status_code),
        "resultDescription": "",
        "durationMs": round(seconds * 1000, 3),
        "callerIpAddress": client_ip or "",
        "correlationId": correlation_id,
        "identity": who,
        "properties": {
            "clientInfo": observed.client_info,
            "requestUri": observed.request_uri,
            "httpMethod": request.method,
            "httpStatusCode": status_code,
            "requestId": request_id,
        },
    }
