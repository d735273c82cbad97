"""Request plumbing shared by every face served over HTTP."""

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from vaults.activity import request_context
from vaults.models import Face
from vaults.permissions import request_cache


def client_ip(request: HttpRequest) -> str | None:
    """The address a request came from: the socket peer, or the client a trusted proxy
    names (kvconsole/edge.py has written it here by then). The activity log and the sign-in
    throttle both use this."""
    return request.META.get("REMOTE_ADDR")


def activity_context(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[..., HttpResponse]:
    """Tell the activity log which face a request came through, from where, and its id;
    grants read while serving the request are read once."""

    def middleware(request: HttpRequest) -> HttpResponse:
        correlation_id = request.headers.get("x-ms-client-request-id") or str(uuid.uuid4())
        with (
            request_context(
                face=Face.CONSOLE,
                client_ip=client_ip(request),
                correlation_id=correlation_id,
            ),
            request_cache(),
        ):
            return get_response(request)

    return middleware
