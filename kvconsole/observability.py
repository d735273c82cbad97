"""The outermost view of every request: its JSON line, its latency and count, and the
endpoints that watch the deployment (`/healthz`, `/readyz`, `/metrics`).

The probes and the scrape are answered here, on any host, ahead of the vault-host routing
and the console's middleware: nothing signs in, nothing is recorded in the activity log, and
none of them is itself logged or counted (a supervisor probing every few seconds would
drown the lines that matter).

Who may scrape `/metrics` is the deployment's choice, and by default nobody: callers from
`KVCONSOLE_METRICS_NETWORKS`, or bearing `KVCONSOLE_METRICS_TOKEN`.
"""

import functools
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.functional import empty

from . import edge, health, jsonlog, metrics
from .middleware import client_ip

Network = edge.Network


def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = metrics.exposition(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(body, content_type=content_type)


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    token: str = settings.KVCONSOLE_METRICS_TOKEN
    networks = metrics_networks(tuple(settings.KVCONSOLE_METRICS_NETWORKS))
    if not token and not networks:
        return _error(404, "Metrics are not enabled on this deployment.")
    if networks and _within(client_ip(request), networks):
        return None
    if not token:
        return _error(403, "Metrics may be read only from the networks allowed to.")
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer":
        refusal = _error(401, "Metrics need a bearer token.")
        refusal["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refusal
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return _error(403, "The metrics token is not valid.")
    return None


@functools.cache
def metrics_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """`KVCONSOLE_METRICS_NETWORKS` parsed, once per value."""
    return edge.networks("KVCONSOLE_METRICS_NETWORKS", entries)


def _within(address: str | None, networks: tuple[Network, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": jsonlog.result_signature(status), "message": message}}, status=status
    )


ENDPOINTS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": health.healthz,
    "/readyz": health.readyz,
    "/metrics": metrics_endpoint,
}


def observe(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer the probes and the scrape; time, count and log every other request."""
    # A network that is no network stops the server as it starts, not at the first scrape.
    metrics_networks(tuple(settings.KVCONSOLE_METRICS_NETWORKS))

    def middleware(request: HttpRequest) -> HttpResponse:
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is not None:
            if request.method not in ("GET", "HEAD"):
                return _error(405, f"{request.path_info} answers GET only.")
            response = endpoint(request)
            response["Cache-Control"] = "no-store"
            return response
        started = time.perf_counter()
        observed = jsonlog.ObservedRequest(request)
        token = jsonlog.OBSERVED.set(observed)
        try:
            response = get_response(request)
        finally:
            jsonlog.OBSERVED.reset(token)
        seconds = time.perf_counter() - started
        entry = observed.entry
        operation = entry["operation"] if entry is not None else _route(request)
        status = response.status_code
        metrics.request_seconds(operation, status).observe(seconds)
        if jsonlog.REQUESTS.isEnabledFor(logging.INFO):
            jsonlog.write(
                jsonlog.REQUESTS,
                jsonlog.request_line(
                    observed=observed,
                    status_code=status,
                    seconds=seconds,
                    operation=operation,
                    client_ip=client_ip(request),
                    caller=None if entry is not None else _signed_in(request),
                ),
            )
        return response

    return middleware


def _route(request: HttpRequest) -> str:
    """A request that ran no operation is named by its URL pattern's name, a bounded set (a
    path itself would make a metric label per URL anyone cares to ask for)."""
    match = request.resolver_match
    if match is not None and match.view_name:
        return match.view_name
    if request.path_info.startswith(f"/{settings.STATIC_URL.lstrip('/')}"):
        return "static"
    return "unmatched"


def _signed_in(request: HttpRequest) -> tuple[Any, str, str] | None:
    """The signed-in person, if the request has already looked them up: reading the session
    here would cost a query the request itself did not need."""
    user = getattr(request, "user", None)
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    if not user.is_authenticated:
        return None
    return user.oid, user.username, user.kind
