"""Request types for typed views."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class AuthedRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


def is_partial(request: AuthedRequest) -> bool:
    """An htmx request that wants a fragment: not a boosted navigation or a history restore."""
    return (
        bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request
    )
