"""The edge of every request, the vault endpoint's included: what a trusted proxy says about
it, and what the response says about the server.

Behind a proxy that terminates TLS the server's peer is the proxy, so the client's address,
scheme and host arrive in X-Forwarded-For, -Proto and -Host. Anyone can send those headers,
so they are believed only when the peer is one of `KVCONSOLE_TRUSTED_PROXIES`; then they are
written into the request's REMOTE_ADDR, scheme and HTTP_HOST, so that everything downstream
(the activity log's client address, the sign-in throttle, the vault-host lookup, Django's
host and HTTPS checks) reads the one answer without knowing about proxies. Otherwise they are
dropped, so nothing downstream can mistake them for the truth.
"""

import functools
import ipaddress
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")


def server_header(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[..., HttpResponse]:
    """No Server banner: granian names itself unless the application sends the header, and
    it sends nothing when the value is empty."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response["Server"] = ""
        return response

    return middleware


def networks(setting: str, entries: Iterable[str]) -> tuple[Network, ...]:
    """A setting's addresses or CIDR networks, parsed; ImproperlyConfigured names the
    setting and the entry that is neither."""
    parsed = []
    for entry in entries:
        try:
            parsed.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{setting}: {entry!r} is neither an address nor a network."
            ) from None
    return tuple(parsed)


def forwarded_by_trusted_proxy(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[..., HttpResponse]:
    """Apply a trusted proxy's X-Forwarded-* headers; with no proxy configured, nothing
    downstream reads them and this middleware is left out (it costs no request anything)."""
    proxies = networks("KVCONSOLE_TRUSTED_PROXIES", settings.KVCONSOLE_TRUSTED_PROXIES)
    if not proxies:
        raise MiddlewareNotUsed

    @functools.lru_cache(maxsize=1024)
    def trusted(address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in proxies)

    def middleware(request: HttpRequest) -> HttpResponse:
        meta = request.META
        if not trusted(meta.get("REMOTE_ADDR", "")):
            for name in FORWARDED_HEADERS:
                meta.pop(name, None)
            return get_response(request)
        hops = [hop.strip() for hop in meta.pop("HTTP_X_FORWARDED_FOR", "").split(",")]
        # Read from the nearest hop back: each trusted proxy appended the address it saw, so
        # the first hop that is no trusted proxy is the client. Anything before it was sent
        # by the client and proves nothing; a hop that is no address ends the walk.
        for hop in reversed(hops):
            if not _is_address(hop):
                break
            meta["REMOTE_ADDR"] = hop
            if not trusted(hop):
                break
        scheme = _first(meta.pop("HTTP_X_FORWARDED_PROTO", "")).lower()
        if scheme in ("http", "https"):
            meta["wsgi.url_scheme"] = scheme
        host = _first(meta.pop("HTTP_X_FORWARDED_HOST", ""))
        if host:
            meta["HTTP_HOST"] = host
        return get_response(request)

    return middleware


def _first(value: str) -> str:
    """The value the proxy nearest the client set, when a chain of proxies appended theirs."""
    return value.split(",", 1)[0].strip()


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
